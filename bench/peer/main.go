// repl-peer: the benchmark's peer. The same reconcile as repl-operator (the same four children with
// the same names and labels, owned by the Repl; a status with phase, observedGeneration and a Ready
// condition), written with controller-runtime the way a kubebuilder user would: typed children by
// server-side apply, label-filtered caches for them, the Repl as unstructured (no generated types).
// Test tooling only (bench/run.sh builds and runs it); the product is C++.
//
// It logs the two lines bench/run.sh waits for in repl-operator's format ("serving metrics" with
// the address, "caches synced"), so one harness measures both.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsac "k8s.io/client-go/applyconfigurations/apps/v1"
	coreac "k8s.io/client-go/applyconfigurations/core/v1"
	metaac "k8s.io/client-go/applyconfigurations/meta/v1"
	netac "k8s.io/client-go/applyconfigurations/networking/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

var replGVK = schema.GroupVersionKind{Group: "peetcode.com", Version: "v1alpha1", Kind: "Repl"}

const fieldOwner = client.FieldOwner("repl-peer")

// logLine writes one line in repl-operator's log format: run.sh matches
// `{"ts":...,"level":"info","msg":...` at the start, so the order is fixed.
func logLine(msg string, fields ...string) {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	out := fmt.Sprintf(`{"ts":%s,"level":"info","msg":%s`, q(time.Now().UTC().Format("2006-01-02T15:04:05.000Z")), q(msg))
	for i := 0; i+1 < len(fields); i += 2 {
		out += "," + q(fields[i]) + ":" + q(fields[i+1])
	}
	fmt.Fprintln(os.Stderr, out+"}")
}

type reconciler struct {
	client.Client
	ideDomain, previewDomain string
}

func commonLabels(name, user string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       "repl",
		"app.kubernetes.io/managed-by": "repl-operator",
		"app.kubernetes.io/instance":   name,
		"peetcode.com/repl":            name,
		"peetcode.com/user":            user,
	}
}

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	repl := &unstructured.Unstructured{}
	repl.SetGroupVersionKind(replGVK)
	if err := r.Get(ctx, req.NamespacedName, repl); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if repl.GetDeletionTimestamp() != nil {
		return ctrl.Result{}, nil
	}
	name, ns := repl.GetName(), repl.GetNamespace()
	user, _, _ := unstructured.NestedString(repl.Object, "spec", "userId")
	language, _, _ := unstructured.NestedString(repl.Object, "spec", "language")
	suspended, _, _ := unstructured.NestedBool(repl.Object, "spec", "suspended")
	replicas := int32(1)
	if suspended {
		replicas = 0
	}
	l := commonLabels(name, user)
	owner := metaac.OwnerReference().WithAPIVersion(replGVK.GroupVersion().String()).WithKind(replGVK.Kind).
		WithName(name).WithUID(repl.GetUID()).WithController(true).WithBlockOwnerDeletion(true)

	for _, child := range []runtime.ApplyConfiguration{
		r.deployment(name, ns, language, replicas, l, owner),
		r.service(name, ns, l, owner),
		r.ingress(name, ns, l, owner),
		r.networkPolicy(name, ns, l, owner),
	} {
		if err := r.Apply(ctx, child, fieldOwner, client.ForceOwnership); err != nil {
			return ctrl.Result{}, err
		}
	}

	phase, status, reason, message := "Starting", "False", "DeploymentNotReady", "waiting for the runner pod to become ready"
	d := &appsv1.Deployment{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	switch {
	case suspended:
		phase, reason, message = "Suspended", "Suspended", "spec.suspended is true: the Deployment is scaled to zero"
	case d.Status.ReadyReplicas > 0 && d.Status.ObservedGeneration >= d.Generation:
		phase, status, reason, message = "Ready", "True", "DeploymentReady", "the runner pod is ready"
	}
	// Writes only when something changed, keeping the transition time of an unchanged condition.
	oldPhase, _, _ := unstructured.NestedString(repl.Object, "status", "phase")
	oldGen, _, _ := unstructured.NestedInt64(repl.Object, "status", "observedGeneration")
	conds, _, _ := unstructured.NestedSlice(repl.Object, "status", "conditions")
	transition := metav1.Now().UTC().Format(time.RFC3339)
	for _, c := range conds {
		if m, ok := c.(map[string]interface{}); ok && m["type"] == "Ready" {
			if m["status"] == status {
				if t, ok := m["lastTransitionTime"].(string); ok {
					transition = t
				}
				if oldPhase == phase && oldGen == repl.GetGeneration() && m["reason"] == reason {
					return ctrl.Result{}, nil
				}
			}
		}
	}
	patch := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": replGVK.GroupVersion().String(), "kind": replGVK.Kind,
		"metadata": map[string]interface{}{"name": name, "namespace": ns},
		"status": map[string]interface{}{
			"phase":              phase,
			"observedGeneration": repl.GetGeneration(),
			"urls": map[string]interface{}{
				"ide": "https://" + name + "." + r.ideDomain, "preview": "https://" + name + "." + r.previewDomain,
			},
			"conditions": []interface{}{map[string]interface{}{
				"type": "Ready", "status": status, "reason": reason, "message": message,
				"observedGeneration": repl.GetGeneration(), "lastTransitionTime": transition,
			}},
		},
	}}
	return ctrl.Result{}, r.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(patch), fieldOwner,
		client.ForceOwnership)
}

// deployment mirrors templates/deployment.yaml with repl-operator's default settings (requests and
// limits of lib/repl/children.hpp's ChildSettings), so both put the same pods on the nodes.
func (r *reconciler) deployment(name, ns, language string, replicas int32, l map[string]string,
	owner *metaac.OwnerReferenceApplyConfiguration) *appsac.DeploymentApplyConfiguration {
	q := resource.MustParse
	env := func(k, v string) *coreac.EnvVarApplyConfiguration { return coreac.EnvVar().WithName(k).WithValue(v) }
	restricted := coreac.SecurityContext().WithAllowPrivilegeEscalation(false).
		WithCapabilities(coreac.Capabilities().WithDrop("ALL"))
	mount := coreac.VolumeMount().WithName("workspace-volume").WithMountPath("/workspace")
	return appsac.Deployment(name, ns).WithLabels(l).WithOwnerReferences(owner).WithSpec(appsac.DeploymentSpec().
		WithReplicas(replicas).
		WithStrategy(appsac.DeploymentStrategy().WithType(appsv1.RecreateDeploymentStrategyType)).
		WithSelector(metaac.LabelSelector().WithMatchLabels(map[string]string{"peetcode.com/repl": name})).
		WithTemplate(coreac.PodTemplateSpec().WithLabels(l).WithSpec(coreac.PodSpec().
			WithAutomountServiceAccountToken(false).WithEnableServiceLinks(false).
			WithSecurityContext(coreac.PodSecurityContext().WithRunAsNonRoot(true).WithRunAsUser(1000).
				WithRunAsGroup(1000).WithFSGroup(1000).
				WithSeccompProfile(coreac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
			WithVolumes(coreac.Volume().WithName("workspace-volume").
				WithEmptyDir(coreac.EmptyDirVolumeSource().WithSizeLimit(q("2Gi")))).
			WithInitContainers(coreac.Container().WithName("copy-s3-resources").WithImage("amazon/aws-cli:2.17.0").
				WithCommand("/bin/sh", "-c").WithArgs("aws s3 cp --recursive \"s3://$S3_BUCKET/$CODE_PREFIX/$REPL_ID/\" /workspace").
				WithEnv(env("REPL_ID", name), env("LANGUAGE", language), env("S3_BUCKET", "repl"),
					env("CODE_PREFIX", "code"), env("BASE_PREFIX", "base"), env("WORKSPACE", "/workspace"),
					env("HOME", "/tmp")).
				WithSecurityContext(restricted).WithVolumeMounts(mount)).
			WithContainers(coreac.Container().WithName("runner").WithImage("100xdevs/runner:latest").
				WithPorts(coreac.ContainerPort().WithName("ws").WithContainerPort(3001),
					coreac.ContainerPort().WithName("user").WithContainerPort(3000)).
				WithReadinessProbe(coreac.Probe().WithTCPSocket(coreac.TCPSocketAction().WithPort(intstr.FromInt32(3001))).
					WithPeriodSeconds(2).WithFailureThreshold(3)).
				WithSecurityContext(restricted).
				WithResources(coreac.ResourceRequirements().
					WithRequests(corev1.ResourceList{"cpu": q("100m"), "memory": q("256Mi"), "ephemeral-storage": q("256Mi")}).
					WithLimits(corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi"), "ephemeral-storage": q("2Gi")})).
				WithVolumeMounts(mount)))))
}

func (r *reconciler) service(name, ns string, l map[string]string,
	owner *metaac.OwnerReferenceApplyConfiguration) *coreac.ServiceApplyConfiguration {
	port := func(n string, p int32) *coreac.ServicePortApplyConfiguration {
		return coreac.ServicePort().WithName(n).WithProtocol(corev1.ProtocolTCP).WithPort(p).WithTargetPort(intstr.FromInt32(p))
	}
	return coreac.Service(name, ns).WithLabels(l).WithOwnerReferences(owner).WithSpec(coreac.ServiceSpec().
		WithSelector(map[string]string{"peetcode.com/repl": name}).WithPorts(port("ws", 3001), port("user", 3000)))
}

func (r *reconciler) ingress(name, ns string, l map[string]string,
	owner *metaac.OwnerReferenceApplyConfiguration) *netac.IngressApplyConfiguration {
	rule := func(host string, port int32) *netac.IngressRuleApplyConfiguration {
		return netac.IngressRule().WithHost(host).WithHTTP(netac.HTTPIngressRuleValue().WithPaths(
			netac.HTTPIngressPath().WithPath("/").WithPathType(networkingv1.PathTypePrefix).WithBackend(
				netac.IngressBackend().WithService(netac.IngressServiceBackend().WithName(name).
					WithPort(netac.ServiceBackendPort().WithNumber(port))))))
	}
	return netac.Ingress(name+"-ingress", ns).WithLabels(l).WithOwnerReferences(owner).WithSpec(netac.IngressSpec().
		WithIngressClassName("nginx").WithRules(rule(name+"."+r.ideDomain, 3001), rule(name+"."+r.previewDomain, 3000)))
}

func (r *reconciler) networkPolicy(name, ns string, l map[string]string,
	owner *metaac.OwnerReferenceApplyConfiguration) *netac.NetworkPolicyApplyConfiguration {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(p corev1.Protocol, n int32) *netac.NetworkPolicyPortApplyConfiguration {
		return netac.NetworkPolicyPort().WithProtocol(p).WithPort(intstr.FromInt32(n))
	}
	return netac.NetworkPolicy(name, ns).WithLabels(l).WithOwnerReferences(owner).WithSpec(netac.NetworkPolicySpec().
		WithPodSelector(metaac.LabelSelector().WithMatchLabels(map[string]string{"peetcode.com/repl": name})).
		WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress).
		WithIngress(netac.NetworkPolicyIngressRule().WithFrom(netac.NetworkPolicyPeer().WithNamespaceSelector(
			metaac.LabelSelector().WithMatchLabels(map[string]string{"kubernetes.io/metadata.name": "ingress-nginx"}))).
			WithPorts(port(tcp, 3001), port(tcp, 3000))).
		WithEgress(
			netac.NetworkPolicyEgressRule().WithTo(netac.NetworkPolicyPeer().
				WithNamespaceSelector(metaac.LabelSelector().WithMatchLabels(map[string]string{"kubernetes.io/metadata.name": "kube-system"})).
				WithPodSelector(metaac.LabelSelector().WithMatchLabels(map[string]string{"k8s-app": "kube-dns"}))).
				WithPorts(port(udp, 53), port(tcp, 53)),
			netac.NetworkPolicyEgressRule().WithTo(netac.NetworkPolicyPeer().WithIPBlock(netac.IPBlock().
				WithCIDR("0.0.0.0/0").WithExcept("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
				"169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16")))))
}

// freeAddr picks a free loopback port for the metrics server (controller-runtime's does not say
// which port ":0" became).
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func main() {
	namespace := flag.String("namespace", "", "watch only this namespace (default all)")
	qps := flag.Float64("qps", 20, "client QPS (controller-runtime's default 20; negative: no client-side limit)")
	burst := flag.Int("burst", 30, "client burst (controller-runtime's default 30)")
	workers := flag.Int("workers", 1, "MaxConcurrentReconciles (controller-runtime's default 1)")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseDevMode(false), zap.WriteTo(os.Stderr)))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "repl-peer:", err)
		os.Exit(1)
	}
	cfg.QPS, cfg.Burst = float32(*qps), *burst
	addr, err := freeAddr()
	if err != nil {
		fmt.Fprintln(os.Stderr, "repl-peer:", err)
		os.Exit(1)
	}
	managed := labels.SelectorFromSet(labels.Set{"app.kubernetes.io/managed-by": "repl-operator"})
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&appsv1.Deployment{}:          {Label: managed},
		&corev1.Service{}:             {Label: managed},
		&networkingv1.Ingress{}:       {Label: managed},
		&networkingv1.NetworkPolicy{}: {Label: managed},
	}}
	if *namespace != "" {
		opts.DefaultNamespaces = map[string]cache.Config{*namespace: {}}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Cache:                  opts,
		Metrics:                metricsserver.Options{BindAddress: addr},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "repl-peer:", err)
		os.Exit(1)
	}
	repl := &unstructured.Unstructured{}
	repl.SetGroupVersionKind(replGVK)
	err = ctrl.NewControllerManagedBy(mgr).Named("repl").For(repl).
		Owns(&appsv1.Deployment{}).Owns(&corev1.Service{}).Owns(&networkingv1.Ingress{}).
		Owns(&networkingv1.NetworkPolicy{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: *workers}).
		Complete(&reconciler{Client: mgr.GetClient(), ideDomain: "peetcode.com", previewDomain: "peetcode.dev"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "repl-peer:", err)
		os.Exit(1)
	}
	logLine("serving metrics", "addr", addr)
	// The informers the controller uses (one cache: GetInformer returns the controller's own), once
	// every one of them has listed.
	err = mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		for _, o := range []client.Object{repl, &appsv1.Deployment{}, &corev1.Service{}, &networkingv1.Ingress{},
			&networkingv1.NetworkPolicy{}} {
			if _, err := mgr.GetCache().GetInformer(ctx, o, cache.BlockUntilSynced(true)); err != nil {
				return err
			}
		}
		logLine("caches synced")
		return nil
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "repl-peer:", err)
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := mgr.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "repl-peer:", err)
		os.Exit(1)
	}
}
