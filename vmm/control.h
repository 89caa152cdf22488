/*
 * control.h - a running fleet's control socket: every figure live, and knobs
 * changed while the guests run.
 *
 * Each fleet listens on a Unix stream socket DIR/NAME.sock: NAME is --name
 * (default vmm-PID), DIR is /run/vmm for root, else $XDG_RUNTIME_DIR/vmm, else
 * /tmp/vmm-UID. The path is in the report (JSON "control_socket"), and on
 * stderr when the fleet was named or stderr is a terminal. A client sends
 * one line and reads the reply until the connection closes:
 *
 *   get KEY          "ok VALUE"
 *   set KEY VALUE    "ok VALUE", the value now in force
 *   stat             "KEY VALUE" lines of every key, then "ok"
 *   stat json        one JSON object: {"KEY": value, ...}, then "ok"
 *   keys             every key, "rw" or "ro", then "ok"
 *
 * or "error MESSAGE". `vmm ctl` is the client (vmm/ctl.c). Keys are paths,
 * Linux's names inside a subsystem: ksm/run (0 stop, 1 run, 2 stop and
 * unmerge every page, as /sys/kernel/mm/ksm/run), ksm/pages_to_scan, ...
 * settable; ksm/pages_shared, pool/MemFree, fleet/running, ... read-only.
 * A subsystem that gets knobs later (limits, reclaim) adds rows to the table
 * in control.c.
 *
 * Requests are served on the fleet's main thread, from its poll loop, one
 * connection at a time with a 1 s limit for the request line: a slow client
 * delays the fleet's sampling, never a guest. `set ksm/run 2` pauses each
 * VM in turn while its merged pages are copied back.
 */
#ifndef VMM_CONTROL_H
#define VMM_CONTROL_H

#include <stddef.h>

struct fleet;

struct control {
	int fd; /* listening, or -1 */
	char path[108];
};

/* The socket path for a fleet NAME (a path with a '/' is taken as is).
 * Returns 0, or -1 if it does not fit. */
int control_socket_path(const char *name, char *path, size_t len);
/* Listens for the fleet. A socket of that name with a live fleet behind it
 * is an error; a stale one is replaced. */
int control_open(struct control *c, const char *name, char *err, size_t errlen);
void control_close(struct control *c);
/* Serves one waiting connection (the listening fd was readable). */
void control_serve(struct control *c, struct fleet *fleet);

#endif
