/*
 * LD_PRELOAD shim for the native boot bench: opening /proc/cmdline opens the
 * file named by $BN7_CMDLINE instead. A PID namespace cannot have a kernel
 * command line of its own, and mosnet-init reads its root= and ip= from
 * /proc/cmdline only (no override hook exists yet).
 *
 * Every other path goes straight to the openat syscall.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *redirect(const char *path)
{
	const char *to;

	if (path == NULL || strcmp(path, "/proc/cmdline") != 0)
		return path;
	to = getenv("BN7_CMDLINE");
	return to && *to ? to : path;
}

static int do_openat(int dirfd, const char *path, int flags, va_list ap)
{
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE))
		mode = va_arg(ap, mode_t);
	return (int)syscall(SYS_openat, dirfd, redirect(path), flags, mode);
}

#define WRAP(name)                                              \
	int name(const char *path, int flags, ...)              \
	{                                                       \
		va_list ap;                                     \
		int fd;                                         \
		va_start(ap, flags);                            \
		fd = do_openat(AT_FDCWD, path, flags, ap);      \
		va_end(ap);                                     \
		return fd;                                      \
	}
#define WRAPAT(name)                                            \
	int name(int dirfd, const char *path, int flags, ...)   \
	{                                                       \
		va_list ap;                                     \
		int fd;                                         \
		va_start(ap, flags);                            \
		fd = do_openat(dirfd, path, flags, ap);         \
		va_end(ap);                                     \
		return fd;                                      \
	}

WRAP(open)
WRAP(open64)
WRAPAT(openat)
WRAPAT(openat64)
