package embedded

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// PopBack removes the tail; ok is false when empty. Production code only
// takes from the head; the model test uses it to drain from both ends.
func (d *deque) PopBack() (string, bool) {
	if d.n == 0 {
		return "", false
	}
	i := (d.head + d.n - 1) & d.mask()
	s := d.buf[i]
	d.buf[i] = ""
	d.n--
	d.maybeShrink()
	return s, true
}

// TestDequeAgainstSlice drives the ring buffer and a plain slice with the
// same random operations, through growth, wrap-around and shrinking.
func TestDequeAgainstSlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var d deque
	var model []string
	for i := 0; i < 40000; i++ {
		s := strconv.Itoa(i)
		// Phases bias towards growth, then towards draining.
		grow := (i/4000)%2 == 0
		op := r.IntN(10)
		switch {
		case op < 3 || (grow && op < 6):
			d.PushBack(s)
			model = append(model, s)
		case op < 4 || (grow && op < 7):
			d.PushFront(s)
			model = append([]string{s}, model...)
		case op < 7:
			got, ok := d.PopFront()
			if ok != (len(model) > 0) {
				t.Fatalf("step %d: PopFront ok = %v with %d items", i, ok, len(model))
			}
			if ok {
				if got != model[0] {
					t.Fatalf("step %d: PopFront = %q, want %q", i, got, model[0])
				}
				model = model[1:]
			}
		default:
			got, ok := d.PopBack()
			if ok != (len(model) > 0) {
				t.Fatalf("step %d: PopBack ok = %v with %d items", i, ok, len(model))
			}
			if ok {
				if got != model[len(model)-1] {
					t.Fatalf("step %d: PopBack = %q, want %q", i, got, model[len(model)-1])
				}
				model = model[:len(model)-1]
			}
		}
		if d.Len() != len(model) {
			t.Fatalf("step %d: Len = %d, want %d", i, d.Len(), len(model))
		}
		if i%997 == 0 && !equalStrings(d.Items(), model) {
			t.Fatalf("step %d: items differ from the model", i)
		}
	}
}

func TestDequeRangeIsLRANGE(t *testing.T) {
	var d deque
	for i := 0; i < 5; i++ {
		d.PushBack(strconv.Itoa(i))
	}
	// Wrap the ring so ranges cross the buffer's end.
	for i := 0; i < 3; i++ {
		s, _ := d.PopFront()
		d.PushBack(s)
	}
	// Now 3 4 0 1 2.
	cases := []struct {
		start, end int64
		want       []string
	}{
		{0, -1, []string{"3", "4", "0", "1", "2"}},
		{1, 2, []string{"4", "0"}},
		{-2, -1, []string{"1", "2"}},
		{-100, 1, []string{"3", "4"}},
		{3, 100, []string{"1", "2"}},
		{4, 2, []string{}},
		{5, 10, []string{}},
		{-1, -3, []string{}},
	}
	for _, c := range cases {
		if got := d.Range(c.start, c.end); !equalStrings(got, c.want) {
			t.Errorf("Range(%d, %d) = %q, want %q", c.start, c.end, got, c.want)
		}
	}
}

func TestDequeShrinksAfterBurst(t *testing.T) {
	var d deque
	for i := 0; i < 1<<16; i++ {
		d.PushBack("x")
	}
	for d.Len() > 1 {
		d.PopFront()
	}
	if c := len(d.buf); c > dequeKeepCap {
		t.Fatalf("buffer keeps %d slots for 1 item after draining", c)
	}
	// A large buffer emptied at once is released whole.
	for i := 0; i < 1<<16; i++ {
		d.PushBack("x")
	}
	for d.Len() > 0 {
		if d.Len() == 1<<12 {
			// Drain the rest from the back, skipping the gradual shrink.
			for d.Len() > 0 {
				d.PopBack()
			}
			break
		}
		d.PopFront()
	}
	if len(d.buf) > dequeKeepCap {
		t.Fatalf("empty deque keeps a buffer of %d slots", len(d.buf))
	}
}
