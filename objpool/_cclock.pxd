# time.monotonic() read from C, for the compiled twins that stamp what they keep idle
# (SizedPool's buffers, BufPool's blocks): a Python call per release costs ~250 Ir of a
# ~4,000 Ir cycle. Each module checks once, at import, that it reads the same clock as
# time.monotonic() (the pure build's), and falls back to calling it where it does not.

cdef extern from *:
    """
    #include <time.h>
    /* time.monotonic() read in C: on Linux CPython reads CLOCK_MONOTONIC too. */
    static double objpool_monotonic(void) {
    #if defined(__linux__)
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
            return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
        }
    #endif
        return -1.0;
    }
    """
    double objpool_monotonic()


cdef inline bint c_clock_agrees():
    """Whether objpool_monotonic() reads time.monotonic()'s clock (checked, not assumed)."""
    import sys
    import time

    if not sys.platform.startswith("linux"):
        return False
    before = time.monotonic()
    mine = objpool_monotonic()
    after = time.monotonic()
    return before - 0.001 <= mine <= after + 0.001
