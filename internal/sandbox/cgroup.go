package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Cgroup2Root returns where the cgroup v2 hierarchy is mounted in this mount namespace:
// /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one.
func Cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if fields[sep+1] == "cgroup2" && fields[3] == "/" {
			return fields[4], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup2 hierarchy is mounted (need cgroup v2, unified or hybrid)")
}

// mountNamespace is a private mount namespace in which the cgroup2 hierarchy is mounted at
// /sys/fs/cgroup, where nft resolves `socket cgroupv2` paths. A sleeping process holds it.
type mountNamespace struct {
	holder *exec.Cmd
}

func newMountNamespace(ctx context.Context) (*mountNamespace, error) {
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", "mount -t cgroup2 cgroup2 /sys/fs/cgroup && echo ready && exec sleep infinity")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mount namespace holder: %w", err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("mount cgroup2 in a private mount namespace: %w: %s", err, stderr.String())
	}
	return &mountNamespace{holder: cmd}, nil
}

// Path is the namespace file, for nsenter --mount=.
func (m *mountNamespace) Path() string {
	return fmt.Sprintf("/proc/%d/ns/mnt", m.holder.Process.Pid)
}

func (m *mountNamespace) Close() {
	_ = m.holder.Process.Signal(syscall.SIGKILL)
	_ = m.holder.Wait()
}

// removeCgroupTree removes a cgroup directory and its children, bottom-up, killing whatever
// still runs in them first.
func removeCgroupTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.WriteFile(filepath.Join(dirs[i], "cgroup.kill"), []byte("1"), 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("kill cgroup %s: %w", dirs[i], err)
		}
		var rmErr error
		for range 50 { // processes leave a killed cgroup within milliseconds
			if rmErr = os.Remove(dirs[i]); rmErr == nil || errors.Is(rmErr, os.ErrNotExist) {
				rmErr = nil
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if rmErr != nil {
			return fmt.Errorf("remove cgroup: %w", rmErr)
		}
	}
	return nil
}
