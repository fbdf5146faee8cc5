# C thread-locals for a compiled twin's per-thread caches: the thread's number
# (objpool._threadnumber), once asked, and its caches in the last two pools it used, keyed by
# the pools' serial numbers (unique for the process's life, so a pool made at a dead pool's
# address never matches). The cache pointers are borrowed: a serial matches only while its
# pool, which holds the cache, runs a method. Reading the pool's list of caches instead increfs
# that list, which every thread shares: it made two threads sharing a pool slower than one
# (0.7x, CPython 3.13t), against 1.3-1.5x this way. Each module that cimports this has
# thread-locals of its own, keyed by its own pools' serials.

cdef extern from *:
    """
    #if defined(_MSC_VER)
    #define OBJPOOL_TLS __declspec(thread)
    #else
    #define OBJPOOL_TLS __thread
    #endif
    static OBJPOOL_TLS Py_ssize_t objpool_tl_number = -1;
    static OBJPOOL_TLS Py_ssize_t objpool_tl_serial[2];
    static OBJPOOL_TLS void *objpool_tl_cache[2];

    /* This thread's cache in the pool of `serial`, if it is one of the last two it used
       (the newer first), else NULL. */
    static inline void *objpool_tl_seen(Py_ssize_t serial) {
        void *swap;
        if (objpool_tl_serial[0] == serial) {
            return objpool_tl_cache[0];
        }
        if (objpool_tl_serial[1] == serial) {
            swap = objpool_tl_cache[1];
            objpool_tl_serial[1] = objpool_tl_serial[0];
            objpool_tl_cache[1] = objpool_tl_cache[0];
            objpool_tl_serial[0] = serial;
            objpool_tl_cache[0] = swap;
            return swap;
        }
        return NULL;
    }

    /* Remember `cache` as this thread's in the pool of `serial`, the newest of the two. */
    static inline void objpool_tl_remember(Py_ssize_t serial, void *cache) {
        objpool_tl_serial[1] = objpool_tl_serial[0];
        objpool_tl_cache[1] = objpool_tl_cache[0];
        objpool_tl_serial[0] = serial;
        objpool_tl_cache[0] = cache;
    }
    """
    Py_ssize_t objpool_tl_number
    void *objpool_tl_seen(Py_ssize_t serial) nogil
    void objpool_tl_remember(Py_ssize_t serial, void *cache) nogil


cdef inline object find_cache(list caches, Py_ssize_t serial, type kind, bint number_thread, object thread_number):
    """This thread's cache in a pool's `caches` (a list by thread number, objpool._threadnumber),
    remembered for the pool's `serial`; None if it has none there yet, or if the thread has no
    number yet and `number_thread` is false (Python code, `thread_number()`, must not run once
    a slot is in transit). `kind` keeps a tampered list from the callers' casts."""
    global objpool_tl_number
    cdef Py_ssize_t number = objpool_tl_number
    cdef object cache
    if number < 0:
        if not number_thread:
            return None
        number = thread_number()
        objpool_tl_number = number
    if caches is not None and number < len(caches):
        cache = caches[number]
        if type(cache) is kind:
            objpool_tl_remember(serial, <void *>cache)
            return cache
    return None
