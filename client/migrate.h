/*
 * migrate.h - moving copies of stripes off draining servers, and making
 * lost ones again (room: placement).  See migrate.c.
 */
#ifndef DSM_MIGRATE_H
#define DSM_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

struct dsm_extent;
struct dsm_outbox;

/* Start and stop the mover thread. */
int dsm_migrate_start(void);
void dsm_migrate_stop(void);
/* A server said it drains (or no longer): called on the engine thread. */
void dsm_migrate_server_draining(uint32_t server, bool on);
/* Something may need moving or copying again (a server lost, a copy
 * stale): the mover looks now.  With or without dsm_eng.lock held. */
void dsm_migrate_kick(void);
/* Under the lock: stripes of all regions with a copy on a lost server,
 * stale or being filled (dsm_stats' degraded_stripes). */
uint64_t dsm_degraded_stripes(void);
/* Under the lock: where a write-back of a page of extent e goes (e is
 * being moved: into its move, sent once the copy is), or ob. */
struct dsm_outbox *dsm_move_outbox(const struct dsm_extent *e,
				   struct dsm_outbox *ob);

#endif /* DSM_MIGRATE_H */
