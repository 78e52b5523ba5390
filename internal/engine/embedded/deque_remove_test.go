package embedded

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestDequeRemoveAt removes items at random positions of a ring that
// wraps around, against a plain slice.
func TestDequeRemoveAt(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var d deque
	var model []string
	for i := range 5000 {
		s := strconv.Itoa(i)
		switch op := r.IntN(10); {
		case op < 4:
			d.PushBack(s)
			model = append(model, s)
		case op < 6:
			d.PushFront(s)
			model = slices.Insert(model, 0, s)
		case op < 7 && len(model) > 0:
			d.PopFront()
			model = model[1:]
		case len(model) > 0:
			at := r.IntN(len(model))
			if got := d.RemoveAt(at); got != model[at] {
				t.Fatalf("step %d: RemoveAt(%d) = %q, want %q", i, at, got, model[at])
			}
			model = slices.Delete(model, at, at+1)
		}
		if got := d.Items(); !slices.Equal(got, model) && !(len(got) == 0 && len(model) == 0) {
			t.Fatalf("step %d: deque holds %v, want %v", i, got, model)
		}
	}
}
