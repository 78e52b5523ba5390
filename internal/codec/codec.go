// Package codec turns values into the stored strings of docs/compat.md and back:
// JSON for values, the string itself for strings, and "Z:" + base64(zstd)
// for serialized items longer than the compression threshold.
//
// What it writes is what the Python service writes: JSON with ", " and ": "
// separators and ASCII-only escapes (json.dumps defaults), so LRANGE shows
// the same bytes whichever service produced an item.
//
// One ambiguity of the original is resolved here: a string item that would
// read back as something else (it is valid JSON, such as "42" or "true", or
// it starts with "Z:") is stored JSON-quoted. Every reader that follows
// docs/compat.md (decode JSON, fall back to the raw string) then gets the string.
package codec

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// CompressedPrefix marks a compressed stored value.
const CompressedPrefix = "Z:"

// DefaultThreshold is docs/compat.md's compression threshold in bytes.
const DefaultThreshold = 1024

// DefaultMaxDecoded bounds what one compressed value may expand to.
const DefaultMaxDecoded = 64 << 20

// Options configure a Codec.
type Options struct {
	// Compress enables zstd compression of large items (default on in
	// package sluice; the zero Options leave it off).
	Compress bool
	// Threshold: items longer than this many bytes are compressed.
	// 0 means DefaultThreshold.
	Threshold int
	// MaxDecoded bounds decompressed size; 0 means DefaultMaxDecoded.
	MaxDecoded int
}

// Codec encodes and decodes stored values. It is safe for concurrent use.
type Codec struct {
	opts Options
	enc  *zstd.Encoder
	dec  *zstd.Decoder
}

// New returns a Codec; Close releases its zstd state.
func New(opts Options) (*Codec, error) {
	if opts.Threshold < 0 {
		return nil, fmt.Errorf("compression threshold %d is negative", opts.Threshold)
	}
	if opts.Threshold == 0 {
		opts.Threshold = DefaultThreshold
	}
	if opts.MaxDecoded <= 0 {
		opts.MaxDecoded = DefaultMaxDecoded
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
		// Single-segment frames always carry their content size, which
		// Python's zstandard.decompress needs.
		zstd.WithSingleSegment(true))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(uint64(opts.MaxDecoded)))
	if err != nil {
		enc.Close()
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &Codec{opts: opts, enc: enc, dec: dec}, nil
}

// Close releases the codec's resources.
func (c *Codec) Close() {
	c.enc.Close()
	c.dec.Close()
}

// Encode serializes v: a string as itself (quoted when it would read back as
// something else), a json.RawMessage as given (it must be valid JSON), a
// []byte as text, anything else as JSON. Then compresses when enabled.
func (c *Codec) Encode(v any) (string, error) {
	s, err := Serialize(v)
	if err != nil {
		return "", err
	}
	return c.Compress(s), nil
}

// Compress applies docs/compat.md's compression rule to a serialized item.
func (c *Codec) Compress(s string) string {
	if !c.opts.Compress || len(s) <= c.opts.Threshold {
		return s
	}
	frame := c.enc.EncodeAll([]byte(s), make([]byte, 0, len(s)/2))
	out := CompressedPrefix + base64.StdEncoding.EncodeToString(frame)
	if len(out) >= len(s) {
		return s
	}
	return out
}

// ErrNotJSON is returned by Serialize for a json.RawMessage that is not JSON.
var ErrNotJSON = errors.New("raw message is not valid JSON")

// ErrInvalidUTF8 is returned by Serialize for text that is not UTF-8: the
// wire format (and the Python service) carries text, and the dead-letter
// envelopes would have to replace such bytes, so they are refused up front.
var ErrInvalidUTF8 = errors.New("value is not valid UTF-8 text")

// Serialize is Encode without compression.
func Serialize(v any) (string, error) {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return "", ErrInvalidUTF8
		}
		return serializeString(x), nil
	case []byte:
		if !utf8.Valid(x) {
			return "", ErrInvalidUTF8
		}
		return serializeString(string(x)), nil
	case json.RawMessage:
		return rawJSON(x)
	}
	return JSON(v)
}

// JSON serializes v as JSON, strings included (quoted), written as
// Python's json.dumps writes it; a json.RawMessage must be valid JSON.
// Text that is not UTF-8 is refused with ErrInvalidUTF8.
func JSON(v any) (string, error) {
	if x, ok := v.(json.RawMessage); ok {
		return rawJSON(x)
	}
	out, err := marshal(v)
	if err != nil && !errors.Is(err, ErrInvalidUTF8) && !errors.Is(err, ErrNotJSON) {
		return "", fmt.Errorf("encode %T as JSON: %w", v, err)
	}
	return out, err
}

func serializeString(s string) string {
	if strings.HasPrefix(s, CompressedPrefix) || json.Valid([]byte(s)) {
		b, _ := json.Marshal(s)
		return Pythonize(b)
	}
	return s
}

// Decompress reverses the compression of Encode and returns the item's
// text without inspecting it: a "Z:" value that is not valid base64+zstd is
// a plain string and comes back as it is. Callers that need to know
// whether the text is JSON ask json.Valid only when they do.
func (c *Codec) Decompress(stored string) (string, error) {
	if !strings.HasPrefix(stored, CompressedPrefix) {
		return stored, nil
	}
	frame, err := base64.StdEncoding.DecodeString(stored[len(CompressedPrefix):])
	if err != nil {
		return stored, nil //nolint:nilerr // not base64: a plain string (see above)
	}
	out, err := c.dec.DecodeAll(frame, nil)
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return stored, fmt.Errorf("compressed value expands beyond %d bytes: %w", c.opts.MaxDecoded, err)
		}
		return stored, nil
	}
	return string(out), nil
}

// Decode reverses Encode: it decompresses a "Z:" value and reports whether
// the result is JSON. Non-JSON data is a plain string item. A "Z:" value
// that is not valid base64+zstd is returned as the plain string it is.
func (c *Codec) Decode(stored string) (data []byte, isJSON bool, err error) {
	text, err := c.Decompress(stored)
	if err != nil {
		return nil, false, err
	}
	return []byte(text), json.Valid([]byte(text)), nil
}

// Pythonize rewrites compact JSON the way Python's json.dumps writes it: a
// space after every ',' and ':' outside strings, non-ASCII characters as
// \uXXXX escapes, as is DEL (0x7F), \b and \f by name. Input must be valid JSON in UTF-8
// (JSON does that check).
func Pythonize(in []byte) string {
	if out, ok := transcode(in); ok {
		return out
	}
	return string(in) // not JSON: the caller broke the contract; change nothing
}

// QuoteASCII quotes s as Python's json.dumps does with ensure_ascii=True:
// `"` and `\` and \b \f \n \r \t escaped by name, other control characters,
// DEL (0x7F) and every non-ASCII rune as \uXXXX (UTF-16 surrogate pairs above
// the BMP): Python's ASCII escape set is everything outside ' '..'~'.
// Invalid UTF-8 bytes become U+FFFD, as Python's decode would refuse them.
func QuoteASCII(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch c {
			case '"':
				b.WriteString(`\"`)
			case '\\':
				b.WriteString(`\\`)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				if c < 0x20 || c == 0x7f {
					writeU(&b, rune(c))
				} else {
					b.WriteByte(c)
				}
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r >= 0x10000 {
			r -= 0x10000
			writeU(&b, 0xD800+(r>>10))
			writeU(&b, 0xDC00+(r&0x3FF))
			continue
		}
		writeU(&b, r)
	}
	b.WriteByte('"')
	return b.String()
}

func writeU(b *strings.Builder, r rune) {
	const hex = "0123456789abcdef"
	b.WriteString(`\u`)
	b.WriteByte(hex[(r>>12)&0xF])
	b.WriteByte(hex[(r>>8)&0xF])
	b.WriteByte(hex[(r>>4)&0xF])
	b.WriteByte(hex[r&0xF])
}
