// Graceful interruption: Ctrl-C (SIGINT) or SIGTERM sets a flag that long jobs poll between
// steps, so they can write a checkpoint before exiting. A second signal exits at once.
#ifndef LOOM_SIGNALS_H
#define LOOM_SIGNALS_H

#ifdef __cplusplus
extern "C" {
#endif

void loom_install_interrupt_handler(void);
int loom_interrupted(void);
/// Raises the flag as a signal would (for tests).
void loom_request_interrupt(void);
void loom_clear_interrupt(void);

#ifdef __cplusplus
}
#endif

#endif
