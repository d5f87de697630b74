/*
 * mosnet pre-init: the kernel's first process in the initramfs.
 *
 * A Nuitka binary reads /proc/self/exe at start-up and aborts without /proc,
 * and CPython needs /dev/urandom for its hash seed when getrandom() is not
 * ready yet this early in boot. So this static program mounts /proc and
 * /dev, then execs the Python PID 1 in place (same PID). It must never
 * exit: PID 1 exiting panics the kernel. If that exec fails, it stays PID 1
 * and keeps a rescue shell on the console, respawned (ever more slowly while
 * it dies at once, so the log is not flooded), reaping every child.
 *
 * The #ifndef knobs exist for tests (tests/netns/test_preinit.py).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MAIN_BINARY
#define MAIN_BINARY "/usr/lib/mosnet/mosnet-init.bin"
#endif
#ifndef RESCUE_SHELL
#define RESCUE_SHELL "/bin/busybox"
#endif
#ifndef KMSG
#define KMSG "/dev/kmsg"
#endif
#ifndef FIRST_DELAY_MS
#define FIRST_DELAY_MS 1000L
#endif
#define MAX_DELAY_MS 30000L
#define STEADY_S 10 /* a shell that lived this long resets the delay */

struct line {
	char text[256];
	size_t len;
};

static void add(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->text) - 2)
		l->text[l->len++] = *s++;
}

static void add_num(struct line *l, long v)
{
	char digits[24];
	int n = 0;

	if (v < 0) {
		add(l, "-");
		v = -v;
	}
	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) > 0 && n < (int)sizeof(digits));
	while (n > 0 && l->len < sizeof(l->text) - 2)
		l->text[l->len++] = digits[--n];
}

static void start(struct line *l)
{
	l->len = 0;
	add(l, "<3>mosnet-preinit: ");
}

static void emit(struct line *l)
{
	int fd = open(KMSG, O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC);

	l->text[l->len++] = '\n';
	if (fd < 0 || write(fd, l->text, l->len) < 0)
		(void)!write(2, l->text + 3, l->len - 3); /* console: drop the <3> prefix */
	if (fd >= 0)
		close(fd);
}

static void say(const char *msg, int err)
{
	struct line l;

	start(&l);
	add(&l, msg);
	if (err) {
		add(&l, ": ");
		add(&l, strerror(err));
	}
	emit(&l);
}

static void mount_early(void)
{
	mkdir("/proc", 0555);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0 &&
	    errno != EBUSY)
		say("mount /proc failed", errno);
	mkdir("/dev", 0755);
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") != 0 && errno != EBUSY)
		say("mount /dev failed", errno);
}

static void run_shell(char **envp)
{
	char *argv[] = { "sh", NULL };

	setsid();
	ioctl(0, TIOCSCTTY, 0); /* job control if the console allows it */
	execve(RESCUE_SHELL, argv, envp);
	say("cannot exec " RESCUE_SHELL, errno);
	_exit(127);
}

/* Reap every child until pid is gone; its wait status, or -1. */
static int wait_for(pid_t pid)
{
	int status = 0;
	pid_t got;

	for (;;) {
		got = waitpid(-1, &status, 0);
		if (got == pid)
			return status;
		if (got < 0 && errno != EINTR)
			return -1;
	}
}

static void log_exit(int status, long delay_ms)
{
	struct line l;

	start(&l);
	add(&l, "rescue shell ");
	if (status >= 0 && WIFSIGNALED(status)) {
		add(&l, "killed by signal ");
		add_num(&l, WTERMSIG(status));
	} else {
		add(&l, "exited with status ");
		add_num(&l, status >= 0 ? WEXITSTATUS(status) : -1);
	}
	add(&l, "; respawning in ");
	add_num(&l, delay_ms);
	add(&l, " ms");
	emit(&l);
}

static time_t seconds(void)
{
	struct timespec ts = { 0, 0 };

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void __attribute__((noreturn)) rescue_forever(char **envp)
{
	long delay = FIRST_DELAY_MS;
	time_t started;
	pid_t pid;
	int status;

	for (;;) {
		started = seconds();
		say("starting the rescue shell " RESCUE_SHELL, 0);
		pid = fork();
		if (pid == 0)
			run_shell(envp);
		if (pid < 0)
			say("cannot fork the rescue shell", errno);
		status = pid > 0 ? wait_for(pid) : -1;
		if (seconds() - started >= STEADY_S)
			delay = FIRST_DELAY_MS;
		log_exit(status, delay);
		sleep_ms(delay);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			; /* orphans that died meanwhile */
		delay = delay * 2 > MAX_DELAY_MS ? MAX_DELAY_MS : delay * 2;
	}
}

int main(int argc, char **argv, char **envp)
{
	(void)argc;
	mount_early();
	argv[0] = MAIN_BINARY;
	execve(MAIN_BINARY, argv, envp);
	say("cannot exec " MAIN_BINARY, errno);
	rescue_forever(envp); /* never exit: that would panic the kernel */
}
