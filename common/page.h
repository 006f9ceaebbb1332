/*
 * page.h - the page size (room: common).  One value for the pages dsm
 * pages in and out, the pool's pages and the wire protocol's: the
 * kernel's base page on every platform dsm runs on (HELLO checks that both
 * ends agree).
 */
#ifndef DSM_PAGE_H
#define DSM_PAGE_H

#define DSM_PAGE_SIZE  4096u
#define DSM_PAGE_SHIFT 12

#endif /* DSM_PAGE_H */
