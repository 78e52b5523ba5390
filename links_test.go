package sluice_test

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// docRef is a mention of a document under docs/, read from the
	// repository's root wherever it appears.
	docRef = regexp.MustCompile(`\bdocs/[A-Za-z0-9_.-]+\.md\b`)
	// goDocRef is any mention of a document in Go source, read from the
	// repository's root (a document's base name alone cites nothing a
	// reader can find).
	goDocRef = regexp.MustCompile(`(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-]+\.md\b`)
	// mdLink is the target of a Markdown link or image: [text](target).
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
)

// No source file or document cites a document that is not in the
// repository: mentions of docs/<name>.md in *.md files, of any *.md file
// in *.go files (both read from the repository's root), and the relative
// targets of Markdown links.
func TestCitedDocumentsExist(t *testing.T) {
	var checked int
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		isMD := strings.HasSuffix(p, ".md")
		if !isMD && !strings.HasSuffix(p, ".go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		text := string(b)
		exists := func(target string) bool {
			_, err := os.Stat(filepath.FromSlash(target))
			return err == nil
		}
		refs := docRef
		if !isMD {
			refs = goDocRef
		}
		for _, ref := range refs.FindAllString(text, -1) {
			checked++
			if !exists(ref) {
				t.Errorf("%s cites %s, which does not exist", p, ref)
			}
		}
		if !isMD {
			return nil
		}
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			checked++
			if !exists(path.Join(path.Dir(filepath.ToSlash(p)), target)) {
				t.Errorf("%s links to %s, which does not exist", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no citation found: the scan looked in the wrong place")
	}
}
