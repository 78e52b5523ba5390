package memory

// deque is a FIFO of stored strings on a ring buffer: pushes and pops at
// both ends are O(1) amortised, and the buffer shrinks again when a burst
// drains so an emptied queue does not pin its peak memory.
type deque struct {
	buf  []string
	head int // index of the first item
	n    int // number of items
}

const dequeMinCap = 8

func (d *deque) Len() int { return d.n }

// grow doubles the buffer (or shrinks it to fit want) and unrolls the ring.
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

// maybeShrink releases memory once the deque uses a quarter of its buffer.
func (d *deque) maybeShrink() {
	if len(d.buf) > 64 && d.n <= len(d.buf)/4 {
		d.resize(len(d.buf) / 2)
	}
	if d.n == 0 && len(d.buf) > dequeMinCap {
		d.buf = nil
		d.head = 0
	}
}

func (d *deque) PushBack(s string) {
	d.reserve(1)
	d.buf[(d.head+d.n)%len(d.buf)] = s
	d.n++
}

func (d *deque) PushFront(s string) {
	d.reserve(1)
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
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
	d.head = (d.head + 1) % len(d.buf)
	d.n--
	d.maybeShrink()
	return s, true
}

// PopBack removes the tail; ok is false when empty.
func (d *deque) PopBack() (string, bool) {
	if d.n == 0 {
		return "", false
	}
	i := (d.head + d.n - 1) % len(d.buf)
	s := d.buf[i]
	d.buf[i] = ""
	d.n--
	d.maybeShrink()
	return s, true
}

// At returns the i-th item from the head (0 <= i < Len).
func (d *deque) At(i int) string { return d.buf[(d.head+i)%len(d.buf)] }

// Front returns the head without removing it.
func (d *deque) Front() string { return d.At(0) }

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
