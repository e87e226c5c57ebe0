package deploy

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"
)

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) that the chart may write. Decoding into it
// strictly rejects a field that the chart misspells or that the operator
// does not define at this level. The operator's full schema is a CRD,
// which the tests do not ship.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta  `json:"metadata"`
	Spec            serviceMonitorSpec `json:"spec"`
}

type serviceMonitorSpec struct {
	JobLabel          string                   `json:"jobLabel,omitempty"`
	Selector          metav1.LabelSelector     `json:"selector"`
	NamespaceSelector *namespaceSelector       `json:"namespaceSelector,omitempty"`
	Endpoints         []serviceMonitorEndpoint `json:"endpoints"`
}

type namespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

type serviceMonitorEndpoint struct {
	Port          string `json:"port,omitempty"`
	Path          string `json:"path,omitempty"`
	Scheme        string `json:"scheme,omitempty"`
	Interval      string `json:"interval,omitempty"`
	ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
}

// prometheusDuration is the duration format of the ServiceMonitor CRD.
var prometheusDuration = regexp.MustCompile(`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`)

// validate checks what the CRD's schema requires of the fields above.
func (m *serviceMonitor) validate() error {
	if len(m.Spec.Selector.MatchLabels) == 0 && len(m.Spec.Selector.MatchExpressions) == 0 {
		return fmt.Errorf("spec.selector selects nothing")
	}
	if len(m.Spec.Endpoints) == 0 {
		return fmt.Errorf("spec.endpoints is empty")
	}
	for i, e := range m.Spec.Endpoints {
		if e.Port == "" {
			return fmt.Errorf("spec.endpoints[%d].port is empty", i)
		}
		if e.Scheme != "" && e.Scheme != "http" && e.Scheme != "https" {
			return fmt.Errorf("spec.endpoints[%d].scheme %q is invalid", i, e.Scheme)
		}
		for name, d := range map[string]string{"interval": e.Interval, "scrapeTimeout": e.ScrapeTimeout} {
			if d != "" && !prometheusDuration.MatchString(d) {
				return fmt.Errorf("spec.endpoints[%d].%s %q is not a Prometheus duration", i, name, d)
			}
		}
	}
	return nil
}

// kubeObjects are the typed objects of one rendering of the chart.
type kubeObjects struct {
	statefulSets    []*appsv1.StatefulSet
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	secrets         []*corev1.Secret
	serviceAccounts []*corev1.ServiceAccount
	budgets         []*policyv1.PodDisruptionBudget
	roles           []*rbacv1.Role
	roleBindings    []*rbacv1.RoleBinding
	networkPolicies []*networkingv1.NetworkPolicy
	monitors        []*serviceMonitor
}

// decodeStrict renders the chart with args and decodes every manifest
// strictly into its Kubernetes API type: an unknown or duplicate field, a
// wrong type or an unexpected apiVersion or kind fails the test.
func decodeStrict(t *testing.T, args ...string) *kubeObjects {
	t.Helper()
	full := append([]string{"template", "rel", chartDir, "--namespace", "mqtt"}, args...)
	out, err := runCommand("", nil, nil, helmPath(t), full...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}

	objects := &kubeObjects{}
	for i, doc := range splitYAMLDocuments(out) {
		var meta metav1.TypeMeta
		if err := sigsyaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("manifest %d: %v\n%s", i, err, doc)
		}
		var target any
		var wantAPI string
		switch meta.Kind {
		case "StatefulSet":
			target, wantAPI = appendNew(&objects.statefulSets), "apps/v1"
		case "Service":
			target, wantAPI = appendNew(&objects.services), "v1"
		case "ConfigMap":
			target, wantAPI = appendNew(&objects.configMaps), "v1"
		case "Secret":
			target, wantAPI = appendNew(&objects.secrets), "v1"
		case "ServiceAccount":
			target, wantAPI = appendNew(&objects.serviceAccounts), "v1"
		case "PodDisruptionBudget":
			target, wantAPI = appendNew(&objects.budgets), "policy/v1"
		case "Role":
			target, wantAPI = appendNew(&objects.roles), "rbac.authorization.k8s.io/v1"
		case "RoleBinding":
			target, wantAPI = appendNew(&objects.roleBindings), "rbac.authorization.k8s.io/v1"
		case "NetworkPolicy":
			target, wantAPI = appendNew(&objects.networkPolicies), "networking.k8s.io/v1"
		case "ServiceMonitor":
			target, wantAPI = appendNew(&objects.monitors), "monitoring.coreos.com/v1"
		default:
			t.Fatalf("manifest %d: kind %q has no type in this test; add one\n%s", i, meta.Kind, doc)
		}
		if meta.APIVersion != wantAPI {
			t.Errorf("manifest %d: %s has apiVersion %q, expected %q", i, meta.Kind, meta.APIVersion, wantAPI)
		}
		if err := sigsyaml.UnmarshalStrict(doc, target); err != nil {
			t.Errorf("manifest %d: strict decoding into %T: %v", i, target, err)
		}
	}
	for _, m := range objects.monitors {
		if err := m.validate(); err != nil {
			t.Errorf("ServiceMonitor %s: %v", m.Metadata.Name, err)
		}
	}
	return objects
}

// appendNew appends a new zero object to list and returns it.
func appendNew[T any](list *[]*T) *T {
	v := new(T)
	*list = append(*list, v)
	return v
}

// splitYAMLDocuments splits helm's output at "---" lines and drops the
// documents that hold only comments.
func splitYAMLDocuments(out string) [][]byte {
	var docs [][]byte
	for _, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(out, -1) {
		var content bool
		for _, line := range strings.Split(part, "\n") {
			trimmed := strings.TrimSpace(line)
			if trimmed != "" && !strings.HasPrefix(trimmed, "#") {
				content = true
				break
			}
		}
		if content {
			docs = append(docs, []byte(part))
		}
	}
	return docs
}

// TestHelm_StrictDecode renders the chart with several value sets and
// decodes every manifest strictly into the Kubernetes API types.
func TestHelm_StrictDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"tls", []string{"-f", tlsValues}},
		{"one-replica", []string{"--set", "replicaCount=1"}},
		{"five-replicas-hard", []string{"--set", "replicaCount=5", "--set", "podAntiAffinity=hard", "--set", "topologySpread.whenUnsatisfiable=DoNotSchedule"}},
		{"network-policy", []string{"--set", "networkPolicy.enabled=true", "--set", "networkPolicy.httpFrom[0].namespaceSelector.matchLabels.team=monitoring", "--set", "serviceMonitor.enabled=true"}},
		{"existing-secrets", []string{"--set", "cluster.existingSecret=peers", "--set", "adminToken.existingSecret=token", "--set", "serviceAccount.create=false"}},
		{"no-prestop", []string{"--set", "preStop.enabled=false", "--set", "terminationGracePeriodSeconds=40", "--set", "podAntiAffinity=none", "--set", "topologySpread.enabled=false"}},
		{"ephemeral-loadbalancer", []string{"--set", "persistence.enabled=false", "--set", "service.type=LoadBalancer", "--set", "service.externalTrafficPolicy=Local", "--set", "podDisruptionBudget.enabled=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objects := decodeStrict(t, tc.args...)
			if len(objects.statefulSets) != 1 {
				t.Fatalf("rendered %d StatefulSets, expected 1", len(objects.statefulSets))
			}
			if len(objects.services) != 2 {
				t.Errorf("rendered %d Services, expected the headless and the client Service", len(objects.services))
			}
		})
	}
}

// TestHelm_ClusterObjects checks the cluster parts of the default
// rendering through the typed objects.
func TestHelm_ClusterObjects(t *testing.T) {
	objects := decodeStrict(t, "-f", tlsValues)
	sts := objects.statefulSets[0]

	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		t.Errorf("replicas = %v, expected 3", sts.Spec.Replicas)
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy = %q, expected Parallel", sts.Spec.PodManagementPolicy)
	}
	pod := sts.Spec.Template.Spec
	container := pod.Containers[0]
	for _, want := range []string{
		"--node-name=$(POD_NAME)",
		"--cluster-bind=0.0.0.0:7946",
		"--peer-bind=0.0.0.0:7947",
		"--advertise=$(POD_NAME).rel-starling-headless.mqtt.svc.cluster.local",
		"--join=rel-starling-headless.mqtt.svc.cluster.local:7946",
		"--bootstrap-expect=3",
		"--gossip-key-file=/etc/starling/cluster/gossip.key",
		"--peer-ca=/etc/starling/cluster/peer-ca.pem",
		"--peer-cert=/etc/starling/cluster/$(POD_NAME).pem",
		"--peer-key=/etc/starling/cluster/$(POD_NAME)-key.pem",
	} {
		if !slices.Contains(container.Args, want) {
			t.Errorf("args lack %s: %q", want, container.Args)
		}
	}
	for _, arg := range container.Args {
		if strings.Contains(arg, "insecure") {
			t.Errorf("args contain %q: the chart must never turn cluster security off", arg)
		}
	}
	if len(container.Env) == 0 || container.Env[0].Name != "POD_NAME" || container.Env[0].ValueFrom == nil ||
		container.Env[0].ValueFrom.FieldRef == nil || container.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("the first variable is %+v, expected POD_NAME from metadata.name (args refer to it)", container.Env[0])
	}

	// The hook and the shutdown run one after the other within the grace
	// period.
	if container.Lifecycle == nil || container.Lifecycle.PreStop == nil || container.Lifecycle.PreStop.Exec == nil {
		t.Fatal("the container has no exec preStop hook")
	}
	wantHook := []string{"/starling", "prestop", "--statefulset=rel-starling", "--http=127.0.0.1:8080", "--timeout=60s"}
	if got := container.Lifecycle.PreStop.Exec.Command; !slices.Equal(got, wantHook) {
		t.Errorf("preStop command = %q, expected %q", got, wantHook)
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds <= 60+30 {
		t.Errorf("terminationGracePeriodSeconds = %v, expected more than the 60 s hook plus the 30 s shutdown", pod.TerminationGracePeriodSeconds)
	}
	if pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Error("the service account token is not mounted, but the preStop hook reads the StatefulSet with it")
	}
	if container.StartupProbe == nil || container.LivenessProbe == nil || container.ReadinessProbe == nil {
		t.Error("the container lacks a startup, liveness or readiness probe")
	}

	affinity := pod.Affinity
	if affinity == nil || affinity.PodAntiAffinity == nil || len(affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("affinity = %+v, expected one preferred pod anti-affinity term", affinity)
	}
	if len(pod.TopologySpreadConstraints) != 1 || pod.TopologySpreadConstraints[0].TopologyKey != "topology.kubernetes.io/zone" {
		t.Errorf("topologySpreadConstraints = %+v, expected one on topology.kubernetes.io/zone", pod.TopologySpreadConstraints)
	}

	var headless *corev1.Service
	for _, svc := range objects.services {
		if svc.Name == "rel-starling-headless" {
			headless = svc
		}
	}
	if headless == nil {
		t.Fatal("no Service rel-starling-headless")
	}
	if !headless.Spec.PublishNotReadyAddresses || headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("headless Service: publishNotReadyAddresses %v, clusterIP %q, expected true and None",
			headless.Spec.PublishNotReadyAddresses, headless.Spec.ClusterIP)
	}
	var ports []string
	for _, p := range headless.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s/%d/%s", p.Name, p.Port, p.Protocol))
	}
	for _, want := range []string{"gossip-tcp/7946/TCP", "gossip-udp/7946/UDP", "peer/7947/"} {
		if !slices.ContainsFunc(ports, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("headless Service ports %q lack %s", ports, want)
		}
	}

	if len(objects.budgets) != 1 || objects.budgets[0].Spec.MaxUnavailable == nil ||
		*objects.budgets[0].Spec.MaxUnavailable != intstr.FromInt32(1) {
		t.Errorf("PodDisruptionBudget %+v, expected one with maxUnavailable 1", objects.budgets)
	}

	if len(objects.roles) != 1 || len(objects.roleBindings) != 1 {
		t.Fatalf("rendered %d Roles and %d RoleBindings, expected one each", len(objects.roles), len(objects.roleBindings))
	}
	wantRule := rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, ResourceNames: []string{"rel-starling"}, Verbs: []string{"get"}}
	if rules := objects.roles[0].Rules; len(rules) != 1 || fmt.Sprint(rules[0]) != fmt.Sprint(wantRule) {
		t.Errorf("Role rules = %+v, expected only %+v", rules, wantRule)
	}
	binding := objects.roleBindings[0]
	if binding.RoleRef.Name != "rel-starling" || len(binding.Subjects) != 1 || binding.Subjects[0].Name != pod.ServiceAccountName {
		t.Errorf("RoleBinding %+v does not bind Role rel-starling to the pods' service account %q", binding, pod.ServiceAccountName)
	}

	if len(objects.monitors) != 1 {
		t.Errorf("rendered %d ServiceMonitors, expected 1 (tls-values.yaml enables it)", len(objects.monitors))
	}
}

// TestHelm_GeneratedClusterSecret checks the peer CA, the node certificates
// and the gossip key that the chart generates.
func TestHelm_GeneratedClusterSecret(t *testing.T) {
	objects := decodeStrict(t, "--set", "replicaCount=4")
	var caSecret, clusterSecret *corev1.Secret
	for _, s := range objects.secrets {
		switch s.Name {
		case "rel-starling-peer-ca":
			caSecret = s
		case "rel-starling-cluster":
			clusterSecret = s
		}
	}
	if caSecret == nil || clusterSecret == nil {
		t.Fatal("the chart rendered no Secret rel-starling-peer-ca or rel-starling-cluster")
	}
	if _, ok := clusterSecret.Data["peer-ca-key.pem"]; ok {
		t.Error("the Secret that pods mount contains the peer CA's key")
	}

	key := decodeBase64(t, clusterSecret.Data["gossip.key"])
	if len(key) != 32 {
		t.Errorf("gossip.key holds %d bytes after base64 decoding, expected 32 (AES-256)", len(key))
	}

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(clusterSecret.Data["peer-ca.pem"]) {
		t.Fatal("peer-ca.pem contains no certificate")
	}
	if !bytes.Equal(clusterSecret.Data["peer-ca.pem"], caSecret.Data["tls.crt"]) {
		t.Error("peer-ca.pem differs from the CA in rel-starling-peer-ca")
	}
	for i := range 4 {
		pod := fmt.Sprintf("rel-starling-%d", i)
		cert := parseCertificate(t, clusterSecret.Data[pod+".pem"])
		if cert.Subject.CommonName != pod {
			t.Errorf("%s.pem common name %q, expected %s", pod, cert.Subject.CommonName, pod)
		}
		if !slices.Contains(cert.DNSNames, pod) {
			t.Errorf("%s.pem DNS SANs %q lack the node name", pod, cert.DNSNames)
		}
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: pod, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s.pem does not verify against peer-ca.pem for usage %v: %v", pod, usage, err)
			}
		}
		if block, _ := pem.Decode(clusterSecret.Data[pod+"-key.pem"]); block == nil || !strings.Contains(block.Type, "PRIVATE KEY") {
			t.Errorf("%s-key.pem holds no PEM private key", pod)
		}
	}
}

func decodeBase64(t *testing.T, data []byte) []byte {
	t.Helper()
	out, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("decode base64 %q: %v", data, err)
	}
	return out
}

func parseCertificate(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("no PEM block in %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
