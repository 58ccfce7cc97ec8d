package ratelimit

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// heapChildEnv makes the test binary measure the heap of a million limiters, print it and
// exit (see TestMain): the race detector's shadow memory would distort the figure, so a
// -race run measures in a child built without it.
const heapChildEnv = "GATEHOUSE_HEAP_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(heapChildEnv) == "1" {
		mib, err := millionDevicesHeap()
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		fmt.Printf("heap-mib: %.1f\n", mib)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestMillionDevicesHeap: 1,000,000 active device limiters fit in 200 MiB of heap. Under
// -race it measures in a child process built without the race detector.
func TestMillionDevicesHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	mib, err := 0.0, error(nil)
	if raceEnabled {
		mib = heapInChild(t)
	} else if mib, err = millionDevicesHeap(); err != nil {
		t.Fatal(err)
	}
	t.Logf("1,000,000 device limiters: %.1f MiB of heap", mib)
	if mib > 200 {
		t.Fatalf("%.1f MiB > 200 MiB", mib)
	}
}

// heapInChild runs this package's tests built without -race, in heap-child mode.
func heapInChild(t *testing.T) float64 {
	t.Helper()
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "test", "-race=false", "-count=1", "-v", "-run", "^$", ".")
	cmd.Env = append(os.Environ(), heapChildEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("heap child: %v\n%s", err, out.String())
	}
	_, rest, ok := strings.Cut(out.String(), "heap-mib: ")
	if !ok {
		t.Fatalf("heap child printed no figure:\n%s", out.String())
	}
	line, _, _ := strings.Cut(rest, "\n")
	mib, err := strconv.ParseFloat(line, 64)
	if err != nil {
		t.Fatalf("heap child: %v\n%s", err, out.String())
	}
	return mib
}
