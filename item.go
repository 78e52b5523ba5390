package sluice

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/internal/codec"
)

// Item is one value read from a queue, a DLQ, a channel or the cache:
// decompressed, and either JSON or a plain string (docs/compat.md: readers
// decode JSON and fall back to the raw string). Whether it is JSON is
// worked out only when asked, so passing items along costs nothing.
type Item struct {
	text      string
	stored    string
	decodeErr error
}

// IsJSON reports whether the item is JSON (false: a plain string).
func (it Item) IsJSON() bool { return json.Valid([]byte(it.text)) }

// String returns the item as text: a string value itself (whether it was
// stored plain or JSON-quoted, so Add("42") reads back as 42), otherwise
// the JSON text.
func (it Item) String() string {
	if len(it.text) > 1 && it.text[0] == '"' {
		var s string
		if json.Unmarshal([]byte(it.text), &s) == nil {
			return s
		}
	}
	return it.text
}

// Stored returns the item exactly as stored (possibly "Z:" compressed).
func (it Item) Stored() string { return it.stored }

// DecodeErr is non-nil when the stored value could not be decompressed
// (it expands beyond the codec's size limit); the Item then holds the raw
// stored text, so nothing is dropped, and says why here.
func (it Item) DecodeErr() error { return it.decodeErr }

// JSON returns the item as JSON: a plain string item becomes a JSON string.
func (it Item) JSON() json.RawMessage {
	if it.IsJSON() {
		return json.RawMessage(it.text)
	}
	b, _ := json.Marshal(it.text)
	return b
}

// MarshalJSON makes an Item embed as its JSON value.
func (it Item) MarshalJSON() ([]byte, error) { return it.JSON(), nil }

// Decode unmarshals the item into v. A plain string item decodes into a
// *string (or anything that accepts a JSON string).
func (it Item) Decode(v any) error {
	err := json.Unmarshal([]byte(it.text), v)
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		// Not JSON: a plain string item.
		b, _ := json.Marshal(it.text)
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return &DecodeError{Item: it, Err: err}
	}
	return nil
}

// DecodeError reports an item that does not decode into the type asked
// for. The item is in Item: a call that removed it (GetAs) leaves it to the
// caller, who can PutBack, dead-letter or log it.
type DecodeError struct {
	Item Item
	Err  error
}

// Error says the item did not decode, its size and why.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("sluice: item (%d bytes) does not decode: %v", len(e.Item.text), e.Err)
}

// Unwrap returns the decoder's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// As decodes an item into a T.
func As[T any](it Item) (T, error) {
	var v T
	err := it.Decode(&v)
	return v, err
}

// decode turns a stored value into an Item. It never fails: a value that
// cannot be decompressed is kept raw, with the reason in DecodeErr, so no
// read path ever drops what it took.
func (c *Client) decode(stored string) Item {
	text, err := c.codec.Decompress(stored)
	return Item{text: text, stored: stored, decodeErr: err}
}

func (c *Client) decodeAll(stored []string) []Item {
	items := make([]Item, len(stored))
	for i, s := range stored {
		items[i] = c.decode(s)
	}
	return items
}

// encodeErr maps codec errors to the public sentinels.
func encodeErr(err error) error {
	switch {
	case errors.Is(err, codec.ErrInvalidUTF8):
		return ErrInvalidUTF8
	case errors.Is(err, codec.ErrNotJSON):
		return ErrNotJSON
	}
	return err
}
