package codec

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"unicode/utf8"
)

// marshal encodes v with encoding/json, written the Python way. Invalid
// UTF-8 is refused, never replaced: encoding/json writes each invalid
// byte of a string, a map key or a MarshalText result as \ufffd, so when
// that escape shows up the value is searched for the text it came from;
// a MarshalJSON result passes invalid bytes through, and the rewrite
// refuses them.
func marshal(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	b := bytes.TrimRight(buf.Bytes(), "\n")
	if bytes.Contains(b, []byte(`\ufffd`)) && hasInvalidText(reflect.ValueOf(v)) {
		return "", ErrInvalidUTF8
	}
	return rawJSON(b)
}

// rawJSON checks that b is one JSON value in valid UTF-8 and rewrites it
// the Python way. The rewrite checks both in its one pass; only a refusal
// looks again, to say which.
func rawJSON(b []byte) (string, error) {
	out, ok := transcode(b)
	switch {
	case ok:
		return out, nil
	case !utf8.Valid(b):
		return "", ErrInvalidUTF8
	}
	return "", ErrNotJSON
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// hasInvalidText reports whether encoding/json, encoding v, would meet
// text that is not UTF-8. It follows what encoding/json encodes: exported
// fields not tagged "-", map keys and values, elements ([]byte is
// base64), and MarshalText results. Values with MarshalJSON are left to
// rawJSON. Encoding v succeeded, so it holds no cycle.
func hasInvalidText(v reflect.Value) bool {
	if !v.IsValid() {
		return false
	}
	t := v.Type()
	if t.Implements(jsonMarshaler) || (v.CanAddr() && reflect.PointerTo(t).Implements(jsonMarshaler)) {
		return false
	}
	if t.Implements(textMarshaler) || (v.CanAddr() && reflect.PointerTo(t).Implements(textMarshaler)) {
		if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
			return false
		}
		if !t.Implements(textMarshaler) {
			v = v.Addr()
		}
		text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		return err == nil && !utf8.Valid(text)
	}
	switch t.Kind() {
	case reflect.String:
		return !utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		return !v.IsNil() && hasInvalidText(v.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == "-" && !strings.HasPrefix(f.Tag.Get("json"), "-,") {
				continue
			}
			if hasInvalidText(v.Field(i)) {
				return true
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			if hasInvalidText(iter.Key()) || hasInvalidText(iter.Value()) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && !t.Elem().Implements(jsonMarshaler) && !t.Elem().Implements(textMarshaler) && t.Kind() == reflect.Slice {
			return false // base64
		}
		for i := range v.Len() {
			if hasInvalidText(v.Index(i)) {
				return true
			}
		}
	}
	return false
}
