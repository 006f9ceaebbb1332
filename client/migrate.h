/*
 * migrate.h - moving a region's extents off servers being drained (room:
 * placement).  See migrate.c.
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
/* Under the lock: where a write-back of a page of extent e goes (e is
 * being moved: into its move, sent once the copy is), or ob. */
struct dsm_outbox *dsm_move_outbox(const struct dsm_extent *e,
				   struct dsm_outbox *ob);

#endif /* DSM_MIGRATE_H */
