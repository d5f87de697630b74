/*
 * Safety check of the native boot bench, run in the unpacked image with
 * cmdline_preload.so: prints what opening /proc/cmdline yields. Unless that is
 * the bench's own command line, the bench refuses to start mosnet-init, which
 * would otherwise look for the host's root= device.
 */
#include <fcntl.h>
#include <unistd.h>

int main(void)
{
	char buf[4096];
	ssize_t n;
	int fd = open("/proc/cmdline", O_RDONLY);

	if (fd < 0)
		return 1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(1, buf, (size_t)n) != n)
			return 1;
	return 0;
}
