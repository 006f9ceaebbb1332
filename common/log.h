/*
 * log.h - one line per event to stderr (room: common).
 *
 * The level comes from DSM_LOG (error, warn, info, debug; default warn) and
 * is read once by dsm_log_init(); every line starts with the component,
 * the pid and the level ("dsm-server[42]: info: "), so a user can tell
 * library, server and tool apart.
 */
#ifndef DSM_LOG_H
#define DSM_LOG_H

enum dsm_log_level { DSM_LOG_OFF = -1, DSM_LOG_ERROR, DSM_LOG_WARN, DSM_LOG_INFO, DSM_LOG_DEBUG };

void dsm_log_init(const char *component);
void dsm_log_set_level(enum dsm_log_level level);
int dsm_log_enabled(enum dsm_log_level level);
void dsm_log(enum dsm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define dsm_err(...)   dsm_log(DSM_LOG_ERROR, __VA_ARGS__)
#define dsm_warn(...)  dsm_log(DSM_LOG_WARN, __VA_ARGS__)
#define dsm_info(...)  dsm_log(DSM_LOG_INFO, __VA_ARGS__)
#define dsm_debug(...) do { if (dsm_log_enabled(DSM_LOG_DEBUG)) \
		dsm_log(DSM_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
