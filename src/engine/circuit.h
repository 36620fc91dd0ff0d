/* circuit.h - a child's circuit breaker: quarantine after repeated
 * failures, a half-open probe, closed again once the probe is stable. */
#ifndef AGENTSUP_CIRCUIT_H
#define AGENTSUP_CIRCUIT_H

#include <stdbool.h>

#include "tree.h"

/* Count a failure of c; true when that opens (or reopens) its circuit. */
bool circuit_record(struct tree *, struct node *c);
/* The probe's run has begun: close the circuit once it is stable. */
void circuit_probe_running(struct tree *, struct node *c);
/* Close it if the probe has run long enough; true when closed now. */
bool circuit_try_close(struct tree *, struct node *c);
/* Closed, counts cleared (agentsupctl reset). */
void circuit_reset(struct node *c);
/* c's circuit to be written: allocated (closed) at the first need. */
struct circuit *circuit_own(struct node *c);

#endif
