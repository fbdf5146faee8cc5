# Read-test-writes of C fields that the GIL used to make atomic, for the compiled twins.
# On a free-threaded build (Py_GIL_DISABLED) they are C11-style atomics (GCC/Clang builtins,
# MSVC interlocked calls); with the GIL they are the plain statements they replace, so a GIL
# build's hot path keeps its instruction count.

cdef extern from *:
    """
    #if defined(Py_GIL_DISABLED) && defined(_MSC_VER)
    #include <intrin.h>
    #endif
    /* *p = v; returns the old value. Of two threads swapping -1 into a live index, exactly
       one gets the index. */
    static inline Py_ssize_t objpool_swap(Py_ssize_t *p, Py_ssize_t v) {
    #if !defined(Py_GIL_DISABLED)
        Py_ssize_t old = *p; *p = v; return old;
    #elif defined(_MSC_VER)
        return (Py_ssize_t)_InterlockedExchange64((volatile __int64 *)p, (__int64)v);
    #else
        return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
    #endif
    }
    /* *p += v, no update lost. */
    static inline void objpool_add(Py_ssize_t *p, Py_ssize_t v) {
    #if !defined(Py_GIL_DISABLED)
        *p += v;
    #elif defined(_MSC_VER)
        _InterlockedExchangeAdd64((volatile __int64 *)p, (__int64)v);
    #else
        __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
    #endif
    }
    /* *p, read whole (another thread may be writing it). */
    static inline Py_ssize_t objpool_load(Py_ssize_t *p) {
    #if !defined(Py_GIL_DISABLED)
        return *p;
    #elif defined(_MSC_VER)
        return *(volatile Py_ssize_t *)p;
    #else
        return __atomic_load_n(p, __ATOMIC_SEQ_CST);
    #endif
    }
    /* *p += v, no update lost; returns the new value. */
    static inline Py_ssize_t objpool_add_fetch(Py_ssize_t *p, Py_ssize_t v) {
    #if !defined(Py_GIL_DISABLED)
        return *p += v;
    #elif defined(_MSC_VER)
        return (Py_ssize_t)_InterlockedExchangeAdd64((volatile __int64 *)p, (__int64)v) + v;
    #else
        return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
    #endif
    }
    /* *p += 1 where this thread is the only writer: no lost update, and readers on other
       threads see a whole value, without a locked instruction. */
    static inline void objpool_bump(Py_ssize_t *p) {
    #if !defined(Py_GIL_DISABLED)
        *p += 1;
    #elif defined(_MSC_VER)
        *(volatile Py_ssize_t *)p = *(volatile Py_ssize_t *)p + 1;
    #else
        __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    #endif
    }
    /* *p = max(*p, v), no larger value lost: a high-water mark. */
    static inline void objpool_raise_to(Py_ssize_t *p, Py_ssize_t v) {
    #if !defined(Py_GIL_DISABLED)
        if (v > *p) *p = v;
    #elif defined(_MSC_VER)
        Py_ssize_t seen = *(volatile Py_ssize_t *)p;
        while (v > seen) {
            Py_ssize_t was = (Py_ssize_t)_InterlockedCompareExchange64((volatile __int64 *)p, (__int64)v, (__int64)seen);
            if (was == seen) break;
            seen = was;
        }
    #else
        Py_ssize_t seen = __atomic_load_n(p, __ATOMIC_RELAXED);
        while (v > seen && !__atomic_compare_exchange_n(p, &seen, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        }
    #endif
    }
    """
    Py_ssize_t objpool_swap(Py_ssize_t *p, Py_ssize_t v) nogil
    void objpool_add(Py_ssize_t *p, Py_ssize_t v) nogil
    Py_ssize_t objpool_load(Py_ssize_t *p) nogil
    void objpool_bump(Py_ssize_t *p) nogil
    Py_ssize_t objpool_add_fetch(Py_ssize_t *p, Py_ssize_t v) nogil
    void objpool_raise_to(Py_ssize_t *p, Py_ssize_t v) nogil
