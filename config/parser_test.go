package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOneYAMLDecoder: the package decodes configuration YAML in one place, Parse, which
// is strict. A second, looser decoder would be a second attack surface (alias bombs,
// odd documents) and a second reading of the same file that can disagree with the first.
func TestOneYAMLDecoder(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			ast.Inspect(fn, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "yaml" &&
					slices.Contains([]string{"NewDecoder", "Unmarshal"}, sel.Sel.Name) {
					found = append(found, name+":"+fn.Name.Name)
				}
				return true
			})
		}
	}
	if want := []string{"load.go:Parse"}; !slices.Equal(found, want) {
		t.Fatalf("YAML decoded in %v, want only %v", found, want)
	}
}
