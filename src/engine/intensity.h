/* intensity.h - OTP's restart intensity: at most N restarts in a window. */
#ifndef AGENTSUP_INTENSITY_H
#define AGENTSUP_INTENSITY_H

#include <stdbool.h>
#include <stdint.h>

#include "tree.h"

/* Stamp a restart decision at now; false means the supervisor gives up. */
bool intensity_add(struct node *sup, uint64_t now);
/* Restarts within the window ending at now (for status). */
unsigned intensity_count(const struct node *sup, uint64_t now);
/* A restarted subtree starts with a fresh history. */
void intensity_forget(struct node *sup);
/* Keep the newest stamps when a reload changes the intensity. */
void intensity_resize(struct node *sup, const struct spec *newspec);

#endif
