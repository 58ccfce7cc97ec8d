package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userHZ is the unit of utime/stime in /proc/PID/stat. The kernel always exports these in
// USER_HZ, which is 100 on every Linux architecture Go supports (what getconf CLK_TCK says).
const userHZ = 100

// child is a process started by this tool in its own process group.
type child struct {
	name    string
	cmd     *exec.Cmd
	pgid    int
	logPath string
	done    chan struct{} // closed once Wait returned
	waitErr error

	stopOnce sync.Once
}

// startChild starts argv in a new process group with stdout+stderr going to
// logDir/name.log. The child gets SIGKILL if this process dies (PDEATHSIG), and stop
// must be called (deferred) to end it and its group.
func startChild(name string, argv, extraEnv []string, logDir string) (*child, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, pgid: cmd.Process.Pid, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, then SIGKILL after 3 s. Idempotent.
func (c *child) stop() {
	c.stopOnce.Do(func() {
		if !c.exited() {
			_ = syscall.Kill(-c.pgid, syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(3 * time.Second):
				_ = syscall.Kill(-c.pgid, syscall.SIGKILL)
				select {
				case <-c.done:
				case <-time.After(3 * time.Second):
				}
			}
		}
		// Anything the leader left behind in its group (e.g. a wrapper script's children).
		_ = syscall.Kill(-c.pgid, syscall.SIGKILL)
	})
}

// logTail returns up to n bytes from the end of the child's log.
func (c *child) logTail(n int64) string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - n
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	nr, _ := f.ReadAt(buf, off)
	return string(buf[:nr])
}

// describeExit explains why a child is gone, with the end of its log.
func (c *child) describeExit() error {
	return fmt.Errorf("%s exited early (%v); last output:\n%s", c.name, c.waitErr, indent(c.logTail(2048)))
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// groupCPUTicks sums utime+stime (USER_HZ ticks) of every live process whose process
// group is pgid. Threads are included: /proc/PID/stat is per process.
func groupCPUTicks(pgid int) (int64, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var total int64
	found := false
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pg, ticks, err := procStat(pid)
		if err != nil || pg != pgid {
			continue
		}
		found = true
		total += ticks
	}
	if !found {
		return 0, fmt.Errorf("no live process in group %d", pgid)
	}
	return total, nil
}

// procStat reads the process group and utime+stime of pid from /proc/PID/stat.
func procStat(pid int) (pgrp int, ticks int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0]=state(3) f[1]=ppid(4) f[2]=pgrp(5) … f[11]=utime(14) f[12]=stime(15)
	if len(f) < 13 {
		return 0, 0, errors.New("short stat")
	}
	pgrp, err = strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, err
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("bad utime/stime")
	}
	return pgrp, ut + st, nil
}

// readSyscalls returns syscr (read-like syscalls) from /proc/PID/io.
func readSyscalls(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no syscr in /proc/PID/io")
}

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// selfCPUTicks is this process's own utime+stime (the load client's cost).
func selfCPUTicks() int64 {
	_, t, err := procStat(os.Getpid())
	if err != nil {
		return 0
	}
	return t
}
