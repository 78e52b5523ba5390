package embedded

// deque is a FIFO of stored strings on a ring buffer whose size is a power
// of two: pushes and pops at both ends are O(1) amortised, and the buffer
// shrinks again when a burst drains, so an emptied queue does not pin its
// peak memory. Small buffers are kept as they are, so a queue that hovers
// around a few hundred items never reallocates.
type deque struct {
	buf  []string
	head int // index of the first item
	n    int // number of items
}

const (
	dequeMinCap = 8
	// dequeKeepCap is the size up to which a buffer is never shrunk.
	dequeKeepCap = 1024
)

func (d *deque) Len() int { return d.n }

// resize moves the items to a new buffer of capacity slots (a power of
// two, at least dequeMinCap), unrolling the ring.
func (d *deque) resize(capacity int) {
	if capacity < dequeMinCap {
		capacity = dequeMinCap
	}
	nb := make([]string, capacity)
	if d.n > 0 {
		if d.head+d.n <= len(d.buf) {
			copy(nb, d.buf[d.head:d.head+d.n])
		} else {
			k := copy(nb, d.buf[d.head:])
			copy(nb[k:], d.buf[:d.n-k])
		}
	}
	d.buf = nb
	d.head = 0
}

func (d *deque) reserve(extra int) {
	if d.n+extra <= len(d.buf) {
		return
	}
	c := len(d.buf) * 2
	for c < d.n+extra {
		c *= 2
		if c == 0 {
			c = dequeMinCap
		}
	}
	d.resize(c)
}

// maybeShrink releases memory once a large buffer is mostly empty. The gap
// between growing (full) and shrinking (an eighth used) keeps a queue that
// oscillates from resizing on every cycle.
func (d *deque) maybeShrink() {
	if len(d.buf) <= dequeKeepCap {
		return
	}
	if d.n == 0 {
		d.buf = nil
		d.head = 0
	} else if d.n <= len(d.buf)/8 {
		d.resize(len(d.buf) / 2)
	}
}

func (d *deque) mask() int { return len(d.buf) - 1 }

func (d *deque) PushBack(s string) {
	d.reserve(1)
	d.buf[(d.head+d.n)&d.mask()] = s
	d.n++
}

func (d *deque) PushFront(s string) {
	d.reserve(1)
	d.head = (d.head - 1) & d.mask()
	d.buf[d.head] = s
	d.n++
}

// PopFront removes the head; ok is false when empty.
func (d *deque) PopFront() (string, bool) {
	if d.n == 0 {
		return "", false
	}
	s := d.buf[d.head]
	d.buf[d.head] = "" // let the payload be collected
	d.head = (d.head + 1) & d.mask()
	d.n--
	d.maybeShrink()
	return s, true
}

// At returns the i-th item from the head (0 <= i < Len).
func (d *deque) At(i int) string { return d.buf[(d.head+i)&d.mask()] }

// RemoveAt removes the i-th item from the head (0 <= i < Len) and
// returns it, closing the gap from the nearer end.
func (d *deque) RemoveAt(i int) string {
	m := d.mask()
	s := d.buf[(d.head+i)&m]
	if i < d.n/2 {
		for j := i; j > 0; j-- {
			d.buf[(d.head+j)&m] = d.buf[(d.head+j-1)&m]
		}
		d.buf[d.head] = ""
		d.head = (d.head + 1) & m
	} else {
		for j := i; j < d.n-1; j++ {
			d.buf[(d.head+j)&m] = d.buf[(d.head+j+1)&m]
		}
		d.buf[(d.head+d.n-1)&m] = ""
	}
	d.n--
	d.maybeShrink()
	return s
}

// Clear drops every item.
func (d *deque) Clear() {
	d.buf = nil
	d.head = 0
	d.n = 0
}

// Range copies items start..end inclusive with LRANGE index rules:
// negative indexes count from the tail, out-of-range ends are clamped.
func (d *deque) Range(start, end int64) []string {
	n := int64(d.n)
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	if start < 0 {
		start = 0
	}
	if end >= n {
		end = n - 1
	}
	if start > end || start >= n {
		return []string{}
	}
	out := make([]string, 0, end-start+1)
	for i := start; i <= end; i++ {
		out = append(out, d.At(int(i)))
	}
	return out
}

// Items copies every item, head first.
func (d *deque) Items() []string { return d.Range(0, -1) }
