/* The pause program of the local test images (test/cluster/images.sh): PID 1 of a pod sandbox.
 * It holds the pod's namespaces open and does nothing else: reaps any child reparented to it,
 * exits 0 on SIGTERM or SIGINT, and otherwise sleeps forever. The signals are blocked except
 * inside sigsuspend(), so one that arrives between the check and the sleep is never lost.
 * Built static (gcc -static -Os -s) so the image is this one file. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig) { (void)sig; stop = 1; }

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

int main(void) {
  sigset_t blocked, during_sleep;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGCHLD);
  sigprocmask(SIG_BLOCK, &blocked, &during_sleep);
  sigdelset(&during_sleep, SIGTERM);
  sigdelset(&during_sleep, SIGINT);
  sigdelset(&during_sleep, SIGCHLD);

  struct sigaction sa = {0};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_stop;
  if (sigaction(SIGTERM, &sa, 0) < 0 || sigaction(SIGINT, &sa, 0) < 0) {
    write(2, "pause: sigaction failed\n", 24);
    return 1;
  }
  sa.sa_handler = on_child;
  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  if (sigaction(SIGCHLD, &sa, 0) < 0) {
    write(2, "pause: sigaction failed\n", 24);
    return 1;
  }
  on_child(SIGCHLD); /* children that exited before the handler was set */
  while (!stop) sigsuspend(&during_sleep);
  return 0;
}
