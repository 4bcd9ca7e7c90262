package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// The Kubernetes manifests (deploy/kubernetes) decode strictly into the
// API types, and what they tell chatd (arguments, CHAT_* variables, ports,
// probes) is what this chatd accepts: the flags are chatd's own flag sets,
// so a renamed flag or a changed default fails here.

const k8sDir = "../../deploy/kubernetes"

type kustomization struct {
	APIVersion string              `json:"apiVersion"`
	Kind       string              `json:"kind"`
	Namespace  string              `json:"namespace"`
	Labels     []map[string]any    `json:"labels"`
	Resources  []string            `json:"resources"`
	Images     []map[string]string `json:"images"`
	Secrets    []struct {
		Name  string   `json:"name"`
		Envs  []string `json:"envs"`
		Files []string `json:"files"`
	} `json:"secretGenerator"`
}

type manifests struct {
	kust          kustomization
	services      map[string]*corev1.Service
	statefulSets  map[string]*appsv1.StatefulSet
	deployments   map[string]*appsv1.Deployment
	budgets       map[string]*policyv1.PodDisruptionBudget
	namespaceSeen bool
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{services: map[string]*corev1.Service{}, statefulSets: map[string]*appsv1.StatefulSet{},
		deployments: map[string]*appsv1.Deployment{}, budgets: map[string]*policyv1.PodDisruptionBudget{}}
	data, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &m.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(m.kust.Resources, base) {
			t.Errorf("%s is not among the kustomization's resources", base)
		}
	}
	for _, res := range m.kust.Resources {
		data, err := os.ReadFile(filepath.Join(k8sDir, res))
		if err != nil {
			t.Fatal(err)
		}
		var head struct{ Kind string }
		if err := yaml.Unmarshal(data, &head); err != nil {
			t.Fatalf("%s: %v", res, err)
		}
		var obj interface{ GetName() string }
		switch head.Kind {
		case "Service":
			s := &corev1.Service{}
			obj, m.services[res] = s, s
		case "StatefulSet":
			s := &appsv1.StatefulSet{}
			obj, m.statefulSets[res] = s, s
		case "Deployment":
			d := &appsv1.Deployment{}
			obj, m.deployments[res] = d, d
		case "PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			obj, m.budgets[res] = p, p
		case "Namespace":
			m.namespaceSeen = true
			obj = &corev1.Namespace{}
		default:
			t.Fatalf("%s: kind %q not checked here", res, head.Kind)
		}
		if err := yaml.UnmarshalStrict(data, obj); err != nil {
			t.Fatalf("%s: %v", res, err)
		}
		if obj.GetName() == "" {
			t.Errorf("%s: no name", res)
		}
	}
	return m
}

// roleFlags is chatd's flag set for role, on a fresh Main.
func roleFlags(role Role) (*Main, *flag.FlagSet) {
	m := NewMain(role)
	fs := m.flagSet()
	fs.SetOutput(new(strings.Builder))
	return m, fs
}

// checkContainer checks one chatd container against role's flags and
// returns the Main configured as the container would configure it.
func checkContainer(t *testing.T, where string, c corev1.Container, role Role) (*Main, map[string]int32) {
	t.Helper()
	if len(c.Command) != 0 {
		t.Errorf("%s: command %q overrides the image's /chatd entrypoint", where, c.Command)
	}
	if len(c.Args) == 0 || c.Args[0] != string(role) {
		t.Fatalf("%s: args %q, want the role %q first", where, c.Args, role)
	}
	m, fs := roleFlags(role)
	for _, e := range c.Env {
		name, ok := strings.CutPrefix(e.Name, "CHAT_")
		if !ok {
			if e.Name != "GOMEMLIMIT" {
				t.Errorf("%s: env %s is neither CHAT_* nor GOMEMLIMIT", where, e.Name)
			}
			continue
		}
		flagName := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if fs.Lookup(flagName) == nil {
			t.Errorf("%s: env %s: chatd %s has no --%s", where, e.Name, role, flagName)
			continue
		}
		value := e.Value
		if e.ValueFrom != nil {
			value = "from-" + e.ValueFrom.FieldRef.FieldPath
		}
		if err := fs.Set(flagName, value); err != nil {
			t.Errorf("%s: env %s=%q: %v", where, e.Name, value, err)
		}
	}
	if err := fs.Parse(c.Args[1:]); err != nil || fs.NArg() > 0 {
		t.Errorf("%s: args %q: %v %q", where, c.Args, err, fs.Args())
	}

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	portOf := func(addr string) int32 {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s: address %q: %v", where, addr, err)
			return 0
		}
		n, _ := strconv.Atoi(p)
		return int32(n)
	}
	want := map[string]string{"admin": m.Config.Admin}
	if role.runsGateway() {
		want["chat"], want["http"], want["irc"] = m.Config.Listen, m.Config.HTTP, m.Config.IRC
	}
	if role.runsNode() {
		want["nats"], want["routes"] = m.Config.Cluster.ClientListen, m.Config.Cluster.ClusterListen
	}
	for name, addr := range want {
		if addr == "" {
			t.Errorf("%s: chatd serves no %s port with these settings", where, name)
			continue
		}
		if got := portOf(addr); ports[name] != got {
			t.Errorf("%s: container port %q = %d, chatd listens on %d (%s)", where, name, ports[name], got, addr)
		}
	}
	if len(ports) != len(want) {
		t.Errorf("%s: container ports %v, chatd serves %v", where, ports, want)
	}

	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"startup", c.StartupProbe, "/healthz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", where, pr.name)
			continue
		}
		if g := pr.probe.HTTPGet; g.Path != pr.path || g.Port != intstr.FromString("admin") {
			t.Errorf("%s: %s probe GET %s on %v, want %s on the admin port", where, pr.name, g.Path, g.Port.String(), pr.path)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v: want CPU and memory requests and a memory limit", where, c.Resources)
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
		!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: security context %+v: want no privilege escalation, a read-only root, no capabilities", where, sc)
	}
	return m, ports
}

// secretMounted checks that the cluster secret file chatd is told to read
// is the generated Secret's key, mounted.
func secretMounted(t *testing.T, where string, k kustomization, pod corev1.PodSpec, c corev1.Container, file string) {
	t.Helper()
	if len(k.Secrets) != 1 || len(k.Secrets[0].Envs) != 1 {
		t.Fatalf("kustomization: want one secretGenerator from one env file, got %+v", k.Secrets)
	}
	key := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	for _, vm := range c.VolumeMounts {
		if filepath.Join(vm.MountPath, key) != file {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == vm.Name && v.Secret != nil && v.Secret.SecretName == k.Secrets[0].Name {
				return
			}
		}
	}
	t.Errorf("%s: %s is not the mounted Secret %s's key %q", where, file, k.Secrets[0].Name, key)
}

func TestKubernetesManifests(t *testing.T) {
	k := loadManifests(t)
	if !k.namespaceSeen || k.kust.Namespace == "" {
		t.Errorf("want a Namespace and the kustomization's namespace")
	}
	if len(k.statefulSets) != 1 || len(k.deployments) != 1 {
		t.Fatalf("want one StatefulSet (brokers) and one Deployment (gateways)")
	}
	var sts *appsv1.StatefulSet
	for _, s := range k.statefulSets {
		sts = s
	}
	var dep *appsv1.Deployment
	for _, d := range k.deployments {
		dep = d
	}
	findService := func(name string) *corev1.Service {
		for _, s := range k.services {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no Service %s", name)
		return nil
	}
	selects := func(sel map[string]string, labels map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}

	// Brokers.
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		t.Errorf("brokers: want 3 replicas")
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("brokers: want Parallel pod management (a broker is ready only with a majority)")
	}
	bc := sts.Spec.Template.Spec.Containers[0]
	bm, bports := checkContainer(t, "broker", bc, RoleBroker)
	headless := findService(sts.Spec.ServiceName)
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("broker Service: want headless, publishing not-ready addresses")
	}
	if !selects(headless.Spec.Selector, sts.Spec.Template.Labels) || !selects(sts.Spec.Selector.MatchLabels, sts.Spec.Template.Labels) {
		t.Errorf("broker selectors do not select the broker pods")
	}
	if bm.Config.Cluster.Name != "from-metadata.name" {
		t.Errorf("brokers: CHAT_NAME should be the pod name, got %q", bm.Config.Cluster.Name)
	}
	var wantPeers, wantNATS []string
	for i := range 3 {
		host := fmt.Sprintf("%s-%d.%s", sts.Name, i, headless.Name)
		wantPeers = append(wantPeers, host)
		wantNATS = append(wantNATS, fmt.Sprintf("nats://%s:%d", host, bports["nats"]))
	}
	if got := splitList(bm.Config.Peers); !slices.Equal(got, wantPeers) || bports["routes"] != 6222 {
		t.Errorf("brokers: peers %q (route port %d), want %q on 6222", got, bports["routes"], wantPeers)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("brokers: want one volume claim template")
	}
	dataMounted := false
	for _, vm := range bc.VolumeMounts {
		dataMounted = dataMounted || (vm.Name == sts.Spec.VolumeClaimTemplates[0].Name && vm.MountPath == bm.Config.Cluster.DataDir)
	}
	if !dataMounted {
		t.Errorf("brokers: the claim is not mounted at --data %q", bm.Config.Cluster.DataDir)
	}
	secretMounted(t, "broker", k.kust, sts.Spec.Template.Spec, bc, bm.Config.ClusterSecretFile)
	if a := sts.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity == nil {
		t.Errorf("brokers: no pod anti-affinity")
	}
	checkGrace(t, "broker", sts.Spec.Template.Spec, bm, bc)

	// Gateways.
	gc := dep.Spec.Template.Spec.Containers[0]
	gm, gports := checkContainer(t, "gateway", gc, RoleGateway)
	if got := splitList(gm.Config.NATS); !slices.Equal(got, wantNATS) {
		t.Errorf("gateways: NATS %q, want the brokers %q", got, wantNATS)
	}
	if gm.Config.Bus.Replicas != 3 {
		t.Errorf("gateways: --replicas %d, want 3 for three brokers", gm.Config.Bus.Replicas)
	}
	if _, _, err := net.SplitHostPort(gm.Config.PublicAddr); err != nil {
		t.Errorf("gateways: --public-addr %q: %v", gm.Config.PublicAddr, err)
	}
	secretMounted(t, "gateway", k.kust, dep.Spec.Template.Spec, gc, gm.Config.ClusterSecretFile)
	if !selects(dep.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
		t.Errorf("gateway selector does not select the gateway pods")
	}
	if gc.Lifecycle == nil || gc.Lifecycle.PreStop == nil {
		t.Errorf("gateways: no preStop")
	}
	checkGrace(t, "gateway", dep.Spec.Template.Spec, gm, gc)
	front := findService("chatd")
	if !selects(front.Spec.Selector, dep.Spec.Template.Labels) {
		t.Errorf("Service chatd does not select the gateways")
	}
	served := map[string]bool{}
	for _, p := range front.Spec.Ports {
		if p.TargetPort.Type != intstr.String || gports[p.TargetPort.StrVal] == 0 {
			t.Errorf("Service chatd: port %s targets %v, not a named gateway port", p.Name, p.TargetPort.String())
		}
		served[p.TargetPort.StrVal] = true
	}
	for _, want := range []string{"chat", "http", "irc"} {
		if !served[want] {
			t.Errorf("Service chatd does not serve the gateways' %s port", want)
		}
	}
	if served["admin"] {
		t.Errorf("Service chatd exposes the admin port")
	}

	// Disruption budgets: one for each, selecting its pods.
	for _, tpl := range []map[string]string{sts.Spec.Template.Labels, dep.Spec.Template.Labels} {
		found := false
		for _, b := range k.budgets {
			found = found || (selects(b.Spec.Selector.MatchLabels, tpl) && b.Spec.MaxUnavailable != nil && b.Spec.MaxUnavailable.IntValue() == 1)
		}
		if !found {
			t.Errorf("no PodDisruptionBudget of maxUnavailable 1 for pods %v", tpl)
		}
	}
}

// checkGrace: Kubernetes must not kill chatd before its preStop sleep, its
// drain and its shutdown are over.
func checkGrace(t *testing.T, where string, pod corev1.PodSpec, m *Main, c corev1.Container) {
	t.Helper()
	need := m.Config.DrainDelay + m.Config.ShutdownTimeout
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		need += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= need {
		t.Errorf("%s: terminationGracePeriodSeconds %v, want more than %v (preStop, --drain-delay, --shutdown-timeout)",
			where, pod.TerminationGracePeriodSeconds, need)
	}
}
