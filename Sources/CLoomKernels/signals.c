#include "loom_signals.h"

#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t interrupt_count = 0;

static void on_signal(int signo) {
    (void)signo;
    interrupt_count += 1;
    if (interrupt_count > 1) _exit(130);
    // write(2) is async-signal-safe; the job says what it kept once it reaches a safe point.
    static const char notice[] = "\nloom: stopping at the next safe point (a second Ctrl-C exits at once)\n";
    ssize_t written = write(STDERR_FILENO, notice, sizeof notice - 1);
    (void)written;
}

void loom_install_interrupt_handler(void) {
    struct sigaction action;
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    sigaction(SIGINT, &action, 0);
    sigaction(SIGTERM, &action, 0);
}

int loom_interrupted(void) { return interrupt_count > 0; }

void loom_request_interrupt(void) { interrupt_count = 1; }

void loom_clear_interrupt(void) { interrupt_count = 0; }
