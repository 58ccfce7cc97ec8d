// Command chartgen writes the Helm chart's generated parts from their sources:
//
//   - values.schema.json's properties.config, the JSON Schema of the configuration file
//     (config.JSONSchema: the config package's types and yaml tags are the one source);
//   - the values table of the chart's README.md, from the `# --` comments of values.yaml.
//
// Run from the repository root: `go run ./internal/chartgen` rewrites both; with -check it
// changes nothing and exits 1 when either is stale (make chart-test runs that).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chartgen:", err)
		os.Exit(1)
	}
}

// generated is one file the tool owns part of: its path and a function from the current
// content to the wanted content.
type generated struct {
	path string
	gen  func(current []byte) ([]byte, error)
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chartgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	chart := fs.String("chart", "k8s/gatehouse", "the chart's directory")
	check := fs.Bool("check", false, "change nothing; fail when a generated part is stale")
	if err := fs.Parse(args); err != nil {
		return err
	}
	values, err := os.ReadFile(filepath.Join(*chart, "values.yaml"))
	if err != nil {
		return err
	}
	files := []generated{
		{filepath.Join(*chart, "values.schema.json"), spliceConfigSchema},
		{filepath.Join(*chart, "README.md"), func(cur []byte) ([]byte, error) { return spliceValuesTable(cur, values) }},
	}
	var stale []string
	for _, f := range files {
		cur, err := os.ReadFile(f.path)
		if err != nil {
			return err
		}
		want, err := f.gen(cur)
		if err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		if bytes.Equal(cur, want) {
			continue
		}
		if *check {
			stale = append(stale, f.path)
			continue
		}
		if err := os.WriteFile(f.path, want, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.path)
	}
	if len(stale) > 0 {
		return fmt.Errorf("generated parts are stale in %v: run `make chart-docs` and commit the result", stale)
	}
	return nil
}
