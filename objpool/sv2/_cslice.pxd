# The compiled Slice's C interface, cimported by the other twins so that they build slices
# through _make() directly instead of through a Python call.

cdef class Slice:
    cdef object _view
    cdef list _views
    cdef readonly Py_ssize_t _len
    cdef object _index
    cdef bint _from_pool
    cdef object _callback
    cdef Py_ssize_t _alive  # 1 while live, 0 once released (swapped: objpool._catomic)


cdef Slice _make(object view, object index, object on_release, bint from_pool)
