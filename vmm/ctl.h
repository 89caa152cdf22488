/*
 * ctl.h - `vmm ctl`, the client of a running fleet's control socket
 * (vmm/control.h; usage in vmm/ctl.c).
 */
#ifndef VMM_CTL_H
#define VMM_CTL_H

/* argv[0] is "ctl". Returns the exit status. */
int ctl_main(int argc, char **argv);

#endif
