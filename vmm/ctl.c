/*
 * ctl.c - `vmm ctl`, the client of a running fleet's control socket
 * (control.h):
 *
 *   vmm ctl FLEET get KEY
 *   vmm ctl FLEET set KEY VALUE
 *   vmm ctl FLEET stat [--json]
 *   vmm ctl FLEET keys
 *
 * FLEET is the fleet's --name (vmm-PID by default) or its socket's path.
 * Prints the reply without its "ok"; exit status 0, 1 when the fleet
 * refused the request (its one-line reason on stderr), 2 for bad usage or
 * no such fleet.
 */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"

static void ctl_usage(FILE *out)
{
	fprintf(out,
		"usage: vmm ctl FLEET get KEY\n"
		"       vmm ctl FLEET set KEY VALUE\n"
		"       vmm ctl FLEET stat [--json]\n"
		"       vmm ctl FLEET keys\n"
		"\n"
		"Reads and changes a running fleet's figures and knobs through its control\n"
		"socket. FLEET is the fleet's --name (vmm-PID by default) or the socket's\n"
		"path. Keys: ksm/run (0 stop, 1 run, 2 stop and unmerge all), ksm/pages_to_scan,\n"
		"ksm/sleep_millisecs, ksm/max_page_sharing, ksm/smart_scan, ...; per cgroup\n"
		"cgroup/PATH/memory.current, .max, .high, .low, .min, .events, .pressure,\n"
		".reclaim (write a size to reclaim), ... ('keys' lists them, rw, ro or wo).\n");
}

int ctl_main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		ctl_usage(stdout);
		return 0;
	}
	char request[256];
	const char *verb = argc >= 3 ? argv[2] : "";
	if (strcmp(verb, "get") == 0 && argc == 4)
		snprintf(request, sizeof(request), "get %s\n", argv[3]);
	else if (strcmp(verb, "set") == 0 && argc == 5)
		snprintf(request, sizeof(request), "set %s %s\n", argv[3], argv[4]);
	else if (strcmp(verb, "stat") == 0 && argc == 3)
		snprintf(request, sizeof(request), "stat\n");
	else if (strcmp(verb, "stat") == 0 && argc == 4 && strcmp(argv[3], "--json") == 0)
		snprintf(request, sizeof(request), "stat json\n");
	else if (strcmp(verb, "keys") == 0 && argc == 3)
		snprintf(request, sizeof(request), "keys\n");
	else {
		ctl_usage(stderr);
		return 2;
	}
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (control_socket_path(argv[1], addr.sun_path, sizeof(addr.sun_path))) {
		fprintf(stderr, "vmm ctl: fleet name too long: %s\n", argv[1]);
		return 2;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		fprintf(stderr, "vmm ctl: no fleet '%s' (%s: %s)\n", argv[1], addr.sun_path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return 2;
	}
	if (write(fd, request, strlen(request)) != (ssize_t)strlen(request)) {
		fprintf(stderr, "vmm ctl: cannot send to '%s': %s\n", argv[1], strerror(errno));
		close(fd);
		return 2;
	}
	/* The reply: lines, the last one "ok[ VALUE]" or "error MESSAGE". */
	static char buf[1 << 20];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = 0;
	if (len && buf[len - 1] == '\n')
		buf[--len] = 0;
	char *last = strrchr(buf, '\n');
	last = last ? last + 1 : buf;
	if (strncmp(last, "error ", 6) == 0) {
		fprintf(stderr, "vmm ctl: %s\n", last + 6);
		return 1;
	}
	if (strncmp(last, "ok", 2) != 0) {
		fprintf(stderr, "vmm ctl: the fleet gave no answer\n");
		return 2;
	}
	fwrite(buf, 1, (size_t)(last - buf), stdout); /* the lines before "ok" */
	if (last[2] == ' ')
		printf("%s\n", last + 3); /* get/set: the value */
	return 0;
}
