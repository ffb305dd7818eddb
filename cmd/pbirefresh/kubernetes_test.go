package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/pbirefresh/pbirefresh/configs"
)

func decodeManifest(t *testing.T, name string, into any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../deploy/kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s does not decode strictly: %v", name, err)
	}
}

func checkContainer(t *testing.T, where string, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers", where, len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("%s: container security context %+v", where, sc)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("%s: pod security context %+v", where, pod.SecurityContext)
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: no memory limit", where)
	}
	return c
}

func TestKubernetesManifests(t *testing.T) {
	// SQLite: one replica, Recreate, a volume.
	var single appsv1.Deployment
	decodeManifest(t, "deployment-sqlite.yaml", &single)
	if single.Spec.Replicas == nil || *single.Spec.Replicas != 1 || single.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("deployment-sqlite: one replica with Recreate, got %v %s", single.Spec.Replicas, single.Spec.Strategy.Type)
	}
	checkContainer(t, "deployment-sqlite", single.Spec.Template.Spec)
	// PostgreSQL: three replicas, rolling updates, spread over nodes, a
	// disruption budget.
	var d appsv1.Deployment
	decodeManifest(t, "deployment.yaml", &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("deployment: three replicas with RollingUpdate, got %v %s", d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	if a := d.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Errorf("deployment: no pod anti-affinity")
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			t.Errorf("deployment: replicas on PostgreSQL need no volume (%s)", v.Name)
		}
	}
	var pdb policyv1.PodDisruptionBudget
	decodeManifest(t, "pdb.yaml", &pdb)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "pbirefresh" {
		t.Errorf("pdb: %+v", pdb.Spec)
	}
	c := checkContainer(t, "deployment", d.Spec.Template.Spec)
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("deployment probes: %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	if len(c.Args) < 1 || c.Args[0] != "run" {
		t.Errorf("deployment args %v", c.Args)
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 30 {
		t.Errorf("terminationGracePeriodSeconds must exceed shutdown_timeout (30s): %v", g)
	}

	var cj batchv1.CronJob
	decodeManifest(t, "cronjob.yaml", &cj)
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("cronjob concurrencyPolicy %s", cj.Spec.ConcurrencyPolicy)
	}
	jc := checkContainer(t, "cronjob", cj.Spec.JobTemplate.Spec.Template.Spec)
	if len(jc.Args) < 1 || jc.Args[0] != "once" {
		t.Errorf("cronjob args %v", jc.Args)
	}

	var pvc corev1.PersistentVolumeClaim
	decodeManifest(t, "pvc.yaml", &pvc)

	// The ConfigMaps' configs are valid pbirefresh configuration, each
	// with the state its deployment expects.
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	for _, f := range []string{"configmap.yaml", "configmap-sqlite.yaml"} {
		var cm corev1.ConfigMap
		decodeManifest(t, f, &cm)
		text, ok := cm.Data["pbirefresh.yaml"]
		if !ok {
			t.Fatalf("%s lacks pbirefresh.yaml", f)
		}
		text = strings.Replace(text, "/etc/pbirefresh-token/token", token, 1)
		cfg, err := configs.Parse(f, []byte(text))
		if err != nil {
			t.Fatalf("%s config: %v", f, err)
		}
		if shared := cfg.State.Postgres != nil; shared != (f == "configmap.yaml") {
			t.Errorf("%s: state on PostgreSQL %v", f, shared)
		}
	}
}
