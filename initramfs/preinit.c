/*
 * mosnet pre-init: the kernel's first process in the initramfs.
 *
 * A Nuitka binary reads /proc/self/exe at start-up and aborts without /proc,
 * and CPython needs /dev/urandom for its hash seed when getrandom() is not
 * ready yet this early in boot. So this static program mounts /proc and
 * /dev, then execs the Python PID 1 in place (same PID). It must never
 * exit: PID 1 exiting panics the kernel.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAIN_BINARY "/usr/lib/mosnet/mosnet-init.bin"
#define RESCUE_SHELL "/bin/busybox"

static void say(const char *msg, int err)
{
	char line[256];
	const char *detail = err ? strerror(err) : "";
	int fd = open("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	size_t n = 0;

	line[0] = '\0';
	strncat(line, "<3>mosnet-preinit: ", sizeof(line) - 1);
	strncat(line, msg, sizeof(line) - strlen(line) - 1);
	if (err) {
		strncat(line, ": ", sizeof(line) - strlen(line) - 1);
		strncat(line, detail, sizeof(line) - strlen(line) - 1);
	}
	strncat(line, "\n", sizeof(line) - strlen(line) - 1);
	n = strlen(line);
	if (fd < 0 || write(fd, line, n) < 0)
		(void)!write(2, line + 3, n - 3); /* console: drop the <3> prefix */
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv, char **envp)
{
	char *rescue[] = { "sh", NULL };

	(void)argc;
	mkdir("/proc", 0555);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0 &&
	    errno != EBUSY)
		say("mount /proc failed", errno);
	mkdir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") != 0 && errno != EBUSY)
		say("mount /dev failed", errno);
	argv[0] = MAIN_BINARY;
	execve(MAIN_BINARY, argv, envp);
	say("cannot exec " MAIN_BINARY, errno);
	say("starting the rescue shell", 0);
	execve(RESCUE_SHELL, rescue, envp);
	say("cannot exec " RESCUE_SHELL, errno);
	for (;;)
		pause(); /* never exit: that would panic the kernel */
}
