package sluice

import (
	"encoding/json"
	"fmt"
)

// Item is one value read from a queue, a DLQ or a cache: decompressed, and
// either JSON or a plain string (compat.md: readers decode JSON and fall
// back to the raw string).
type Item struct {
	data   []byte
	isJSON bool
	stored string
}

// IsJSON reports whether the item is JSON (false: a plain string).
func (it Item) IsJSON() bool { return it.isJSON }

// String returns the JSON text, or the plain string.
func (it Item) String() string { return string(it.data) }

// Stored returns the item exactly as stored (possibly "Z:" compressed).
func (it Item) Stored() string { return it.stored }

// JSON returns the item as JSON: a plain string item becomes a JSON string.
func (it Item) JSON() json.RawMessage {
	if it.isJSON {
		return json.RawMessage(it.data)
	}
	b, _ := json.Marshal(string(it.data))
	return b
}

// MarshalJSON makes an Item embed as its JSON value.
func (it Item) MarshalJSON() ([]byte, error) { return it.JSON(), nil }

// Decode unmarshals the item into v. A plain string item decodes into a
// *string (or anything that accepts a JSON string).
func (it Item) Decode(v any) error {
	if err := json.Unmarshal(it.JSON(), v); err != nil {
		return fmt.Errorf("sluice: decode item into %T: %w", v, err)
	}
	return nil
}

// As decodes an item into a T.
func As[T any](it Item) (T, error) {
	var v T
	err := it.Decode(&v)
	return v, err
}

func (c *Client) decode(stored string) (Item, error) {
	data, isJSON, err := c.codec.Decode(stored)
	if err != nil {
		return Item{stored: stored}, err
	}
	return Item{data: data, isJSON: isJSON, stored: stored}, nil
}

// decodeAll decodes stored values; an undecodable one (a compressed value
// over the size limit) is kept as its raw stored string rather than
// failing the whole page.
func (c *Client) decodeAll(stored []string) []Item {
	items := make([]Item, len(stored))
	for i, s := range stored {
		it, err := c.decode(s)
		if err != nil {
			it = Item{data: []byte(s), stored: s}
		}
		items[i] = it
	}
	return items
}
