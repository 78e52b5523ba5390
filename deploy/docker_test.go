package deploy

import (
	"debug/elf"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// image is what the Dockerfile says about the running container.
type image struct {
	buildsWithScript bool
	user             string            // USER uid:gid
	env              map[string]string // ENV
	entrypoint, cmd  []string
	healthcheck      []string // HEALTHCHECK CMD
	volumes          []string
}

// readDockerfile parses the lines of ../Dockerfile the test acts on. It
// knows the exec (JSON) form of ENTRYPOINT, CMD and HEALTHCHECK and the
// KEY=VALUE form of ENV, which the Dockerfile sticks to.
func readDockerfile(t *testing.T) image {
	t.Helper()
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	img := image{env: map[string]string{}}
	jsonList := func(line, s string) []string {
		var v []string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("Dockerfile: %q: want the exec form, a JSON list: %v", line, err)
		}
		return v
	}
	final := false // the lines of the last stage describe the image
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(word) {
		case "FROM":
			final = !strings.Contains(rest, " AS ")
		case "RUN":
			if strings.Contains(rest, "scripts/build.sh ") && strings.Contains(rest, "/out/sluice") {
				img.buildsWithScript = true
			}
		}
		if !final {
			continue
		}
		switch strings.ToUpper(word) {
		case "USER":
			img.user = rest
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: %q: want ENV KEY=VALUE ...", line)
				}
				img.env[k] = v
			}
		case "ENTRYPOINT":
			img.entrypoint = jsonList(line, rest)
		case "CMD":
			img.cmd = jsonList(line, rest)
		case "VOLUME":
			img.volumes = jsonList(line, rest)
		case "HEALTHCHECK":
			_, c, ok := strings.Cut(rest, " CMD ")
			if !ok {
				t.Fatalf("Dockerfile: %q: want HEALTHCHECK [options] CMD [...]", line)
			}
			img.healthcheck = jsonList(line, c)
		}
	}
	return img
}

// TestImageRecipe runs the binary as the image would, since CI has no
// container runtime to build the image itself: built by the Dockerfile's
// script, static (no ELF interpreter: it runs on distroless/static), as the
// image's unprivileged user when the test can switch users (it runs as
// root), from /, with only the image's environment and its data directory
// writable; the HEALTHCHECK command must pass, and what was added must
// still be there after a restart (the /data volume holds the queues).
func TestImageRecipe(t *testing.T) {
	t.Parallel()
	img := readDockerfile(t)
	if !img.buildsWithScript {
		t.Fatal("Dockerfile: no RUN line building /out/sluice with scripts/build.sh: the test builds with that script")
	}
	if len(img.entrypoint) != 1 || img.entrypoint[0] != "/sluice" || len(img.cmd) == 0 || img.cmd[0] != "serve" {
		t.Fatalf("Dockerfile: ENTRYPOINT %q CMD %q: want [/sluice] and [serve ...]", img.entrypoint, img.cmd)
	}
	if img.env["SLUICE_DATA_DIR"] == "" || len(img.volumes) != 1 || img.volumes[0] != img.env["SLUICE_DATA_DIR"] {
		t.Fatalf("Dockerfile: SLUICE_DATA_DIR %q and VOLUME %q: want the data directory to be the volume", img.env["SLUICE_DATA_DIR"], img.volumes)
	}
	host, _, err := net.SplitHostPort(img.env["SLUICE_ADDR"])
	if err != nil || host != "0.0.0.0" {
		t.Fatalf("Dockerfile: SLUICE_ADDR %q: want 0.0.0.0:PORT (reachable from outside the container)", img.env["SLUICE_ADDR"])
	}
	uid, gid := parseUser(t, img.user)
	if uid == 0 {
		t.Fatalf("Dockerfile: USER %q: want an unprivileged user", img.user)
	}

	bin := sluiceBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked: distroless/static has no libc", bin)
		}
	}
	f.Close()

	// The image's environment, nothing inherited; the port moved to one
	// free here and the volume to a directory of the test.
	data := filepath.Join(work, "data-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(data) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}
		if err := os.Chown(data, int(uid), int(gid)); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("not root: the binary runs as uid %d, not the image's %d", os.Geteuid(), uid)
	}
	_, port, _ := strings.Cut(freeAddr(t), ":")
	env := []string{}
	for k, v := range img.env {
		switch k {
		case "SLUICE_ADDR":
			v = "0.0.0.0:" + port
		case "SLUICE_DATA_DIR":
			v = data
		}
		env = append(env, k+"="+v)
	}
	command := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Dir = env, "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	base := "http://127.0.0.1:" + port

	for round := range 2 {
		p := startProcess(t, "sluice "+strings.Join(img.cmd, " "), command(img.cmd...))
		// The HEALTHCHECK, its /sluice replaced by the binary.
		hc := img.healthcheck
		if len(hc) == 0 || hc[0] != "/sluice" {
			t.Fatalf("Dockerfile: HEALTHCHECK CMD %q: want /sluice ...", hc)
		}
		waitFor(t, 20*time.Second, "the HEALTHCHECK command passes", func() (bool, string) {
			out, err := command(hc[1:]...).CombinedOutput()
			return err == nil, string(out)
		})
		if round == 0 {
			resp, err := http.Post(base+"/v1/queues/kept/items", "application/json", strings.NewReader(`{"n": 1}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("add: %d", resp.StatusCode)
			}
		} else if code, body := get(base + "/v1/queues/kept"); code != 200 || !strings.Contains(body, `"current_length":1`) {
			t.Fatalf("after a restart the queue in the data directory is %d %s, want 1 item", code, body)
		}
		p.stop(t)
	}
	entries, err := os.ReadDir(data)
	if err != nil || len(entries) == 0 {
		t.Fatalf("the data directory holds nothing (%v): the engine did not write to the volume", err)
	}
}

func parseUser(t *testing.T, s string) (uid, gid uint32) {
	t.Helper()
	u, g, ok := strings.Cut(s, ":")
	ui, err1 := strconv.ParseUint(u, 10, 32)
	gi, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("Dockerfile: USER %q: want numeric uid:gid (Kubernetes' runAsNonRoot checks numbers)", s)
	}
	return uint32(ui), uint32(gi)
}

// TestVersionStamped: the binary built as releases are says the version
// and commit it was given.
func TestVersionStamped(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(sluiceBinary(t), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice version: %v\n%s", err, out)
	}
	if s := string(out); !strings.HasPrefix(s, "sluice 0.0.0-test (") || !strings.Contains(s, "commit 0123456789abcdef") {
		t.Fatalf("sluice version printed %q, want version 0.0.0-test and commit 0123456789abcdef", s)
	}
}
