package sluice

import (
	"fmt"
	"unicode/utf8"
)

// checkText refuses a name or reason that is not valid UTF-8: names are
// keys and channels other clients read as text, and a reason ends up in a
// dead-letter envelope whose JSON would have to replace the bytes. The
// error matches ErrInvalidUTF8 and kind (ErrInvalidName for names).
func checkText(kind error, what, s string) error {
	if utf8.ValidString(s) {
		return nil
	}
	return fmt.Errorf("sluice: %w: %s %q is %w", kind, what, s, ErrInvalidUTF8)
}
