package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// podFS lays out, under root, the files a pod of the manifest sees, with
// the ownership and modes kubelet gives them: configMap and secret volume
// files are owned by root:root with the volume's defaultMode (0644 if
// unset); with a pod fsGroup their group becomes fsGroup and read-only
// volumes get 0440 added (pkg/volume/volume_linux.go SetVolumeOwnership).
// Then `pbirefresh validate` runs as the pod's runAsUser:runAsGroup, as
// the container's entrypoint would before anything else.
func podFS(t *testing.T, pod corev1.PodSpec) (code int, stderr string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to lay out files owned by root and to run as the pod's user")
	}
	root, err := os.MkdirTemp("", "pbirefresh-pod-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	configMaps := map[string]string{"pbirefresh": "configmap.yaml", "pbirefresh-sqlite": "configmap-sqlite.yaml"}
	c := pod.Containers[0]
	sc := pod.SecurityContext
	for _, m := range c.VolumeMounts {
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == m.Name {
				vol = &pod.Volumes[i]
			}
		}
		dir := filepath.Join(root, m.MountPath)
		os.MkdirAll(dir, 0o755)
		files := map[string][]byte{}
		mode := os.FileMode(0o644)
		switch {
		case vol.ConfigMap != nil:
			var cm corev1.ConfigMap
			decodeManifest(t, configMaps[vol.ConfigMap.Name], &cm)
			for k, v := range cm.Data {
				// absolute paths inside the config point into the pod's root
				v = strings.ReplaceAll(v, " /etc/", " "+root+"/etc/")
				v = strings.ReplaceAll(v, " /var/lib/", " "+root+"/var/lib/")
				files[k] = []byte(v)
			}
			if vol.ConfigMap.DefaultMode != nil {
				mode = os.FileMode(*vol.ConfigMap.DefaultMode)
			}
		case vol.Secret != nil:
			files["token"] = []byte("0123456789abcdef0123456789abcdef\n")
			if vol.Secret.DefaultMode != nil {
				mode = os.FileMode(*vol.Secret.DefaultMode)
			}
		default:
			os.Chown(dir, int(*sc.RunAsUser), int(*sc.RunAsGroup)) // a writable volume (PVC)
			continue
		}
		gid := 0
		if sc.FSGroup != nil {
			gid = int(*sc.FSGroup)
			mode |= 0o440
		}
		for k, v := range files {
			p := filepath.Join(dir, k)
			if err := os.WriteFile(p, v, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chown(p, 0, gid)
			os.Chmod(p, mode)
		}
	}
	bin := filepath.Join(root, "pbirefresh")
	in, _ := os.Open(binary)
	out, _ := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	io.Copy(out, in)
	in.Close()
	out.Close()
	// What the container's command does first, without reaching the
	// network: a daemon's loads and checks the whole configuration
	// (validate); a one-shot's loads it as once does, without the token
	// file (next, which shares once's loading).
	config := filepath.Join(root, c.Args[2])
	args := []string{"validate", "--config", config}
	if c.Args[0] == "once" {
		args = []string{"next", "--config", config, "--job", c.Args[4], "--count", "1"}
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(*sc.RunAsUser), Gid: uint32(*sc.RunAsGroup)}}
	var eb bytes.Buffer
	cmd.Stderr, cmd.Stdout = &eb, &eb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), eb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, eb.String()
}

// TestKubernetesPodsCanReadTheirConfiguration: each shipped
// workload, as its pod would see its files, loads its configuration.
func TestKubernetesPodsCanReadTheirConfiguration(t *testing.T) {
	var ha, single appsv1.Deployment
	var cj batchv1.CronJob
	decodeManifest(t, "deployment.yaml", &ha)
	decodeManifest(t, "deployment-sqlite.yaml", &single)
	decodeManifest(t, "cronjob.yaml", &cj)
	for _, tc := range []struct {
		name string
		pod  corev1.PodSpec
	}{
		{"deployment.yaml", ha.Spec.Template.Spec},
		{"deployment-sqlite.yaml", single.Spec.Template.Spec},
		{"cronjob.yaml", cj.Spec.JobTemplate.Spec.Template.Spec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := podFS(t, tc.pod)
			if code != 0 {
				t.Errorf("%s: the pod's `pbirefresh %s` cannot load its configuration (exit %d):\n%s", tc.name, tc.pod.Containers[0].Args[0], code, out)

			}
		})
	}
}

// The token file's group-readable warning is left out when the group is
// the daemon's own (a secret volume with the pod's fsGroup), and given
// for another group.
func TestTokenModeWarningSparesTheDaemonsOwnGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file another group")
	}
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("0123456789abcdef0123456789abcdef\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		gid  int
		warn bool
	}{{os.Getgid(), false}, {os.Getgid() + 4242, true}} {
		if err := os.Chown(path, 0, tc.gid); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		c := &runCmd{logger: slog.New(slog.NewTextHandler(&out, nil))}
		c.warnTokenMode(path)
		if got := strings.Contains(out.String(), "readable by its group"); got != tc.warn {
			t.Errorf("group %d: warned %v, want %v: %s", tc.gid, got, tc.warn, out.String())
		}
	}
}
