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

/* The huge pages dsm maps where it can (the server's pool, a region made
 * with DSM_ALLOC_HUGE): 2 MiB hugetlb pages, as mmap flags
 * (MAP_HUGE_2MB, spelt out for headers without it; <sys/mman.h> gives
 * MAP_HUGETLB). */
#define DSM_MAP_HUGE_2MB (MAP_HUGETLB | (21 << 26))

#endif /* DSM_PAGE_H */
