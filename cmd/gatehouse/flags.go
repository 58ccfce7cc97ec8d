package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
)

// errHelp is the result of a subcommand's --help: its usage is printed, and the program
// exits 0.
var errHelp = errors.New("help requested")

// newFlags returns a subcommand's flag set, whose usage begins with synopsis.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: gatehouse %s\n", synopsis)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(fs.Output(), "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args. --help (-h) prints the usage on stdout and returns errHelp; a
// bad flag prints the error and the usage on stderr and returns exit status 2.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(out.Bytes())
		return errHelp
	case err != nil:
		stderr.Write(out.Bytes())
		return exitError(2)
	}
	return nil
}

// noFlags parses the arguments of a subcommand that takes none but --help.
func noFlags(name, synopsis string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(name, synopsis)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse %s: unexpected argument %q\n", name, fs.Arg(0))
		return exitError(2)
	}
	return nil
}
