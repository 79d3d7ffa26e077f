package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// File injects every pod template in a YAML stream (`bowline kube-inject`):
// Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets,
// ReplicationControllers, Jobs, CronJobs, and Lists of them. Other documents
// are copied unchanged. Documents are written separated by "---". A workload
// that is not injected (sidecar.istio.io/inject "false", host networking)
// is copied unchanged and warn is told why.
func File(cfg Config, in io.Reader, out io.Writer, warn func(string)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	rd := k8syaml.NewYAMLReader(bufio.NewReader(in))
	n := 0
	for doc := 1; ; doc++ {
		raw, err := rd.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		res, err := injectDocument(cfg, raw, warn)
		if err != nil {
			return fmt.Errorf("document %d: %w", doc, err)
		}
		if n > 0 {
			if _, err := io.WriteString(out, "---\n"); err != nil {
				return err
			}
		}
		n++
		if _, err := out.Write(res); err != nil {
			return err
		}
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for line := range bytes.Lines(b) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
		}
	}
	return out
}

// injectDocument injects one YAML document and returns it as YAML.
func injectDocument(cfg Config, raw []byte, warn func(string)) ([]byte, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	obj, err := injectObject(cfg, tm, raw, warn)
	if err != nil {
		return nil, err
	}
	if obj == nil {
		return raw, nil // not a workload: unchanged
	}
	return marshalClean(obj)
}

// injectObject returns the injected object, or nil when raw is not a kind
// with a pod template.
func injectObject(cfg Config, tm metav1.TypeMeta, raw []byte, warn func(string)) (any, error) {
	decode := func(v any) error {
		if err := yaml.UnmarshalStrict(raw, v); err != nil {
			return fmt.Errorf("%s: %w", tm.Kind, err)
		}
		return nil
	}
	owner := func(m metav1.ObjectMeta) Owner {
		return Owner{APIVersion: tm.APIVersion, Kind: tm.Kind, Name: m.Name, Namespace: m.Namespace}
	}
	switch tm.GroupVersionKind().GroupKind().String() {
	case "List":
		var l corev1.List
		if err := decode(&l); err != nil {
			return nil, err
		}
		for i, item := range l.Items {
			var itm metav1.TypeMeta
			if err := json.Unmarshal(item.Raw, &itm); err != nil {
				return nil, fmt.Errorf("list item %d: %w", i, err)
			}
			o, err := injectObject(cfg, itm, item.Raw, warn)
			if err != nil {
				return nil, fmt.Errorf("list item %d: %w", i, err)
			}
			if o != nil {
				b, err := json.Marshal(o)
				if err != nil {
					return nil, fmt.Errorf("list item %d: %w", i, err)
				}
				l.Items[i].Raw = b
			}
		}
		return &l, nil
	case "Pod":
		var p corev1.Pod
		if err := decode(&p); err != nil {
			return nil, err
		}
		np, err := injectTemplate(cfg, tm.Kind, p.ObjectMeta, &p, OwnerOf(&p), warn)
		if err != nil {
			return nil, err
		}
		return np, nil
	case "Deployment.apps":
		var d appsv1.Deployment
		return &d, templateOf(cfg, tm, decode, &d, &d.ObjectMeta, &d.Spec.Template, owner, warn)
	case "StatefulSet.apps":
		var s appsv1.StatefulSet
		return &s, templateOf(cfg, tm, decode, &s, &s.ObjectMeta, &s.Spec.Template, owner, warn)
	case "DaemonSet.apps":
		var s appsv1.DaemonSet
		return &s, templateOf(cfg, tm, decode, &s, &s.ObjectMeta, &s.Spec.Template, owner, warn)
	case "ReplicaSet.apps":
		var s appsv1.ReplicaSet
		return &s, templateOf(cfg, tm, decode, &s, &s.ObjectMeta, &s.Spec.Template, owner, warn)
	case "Job.batch":
		var j batchv1.Job
		return &j, templateOf(cfg, tm, decode, &j, &j.ObjectMeta, &j.Spec.Template, owner, warn)
	case "CronJob.batch":
		var c batchv1.CronJob
		return &c, templateOf(cfg, tm, decode, &c, &c.ObjectMeta, &c.Spec.JobTemplate.Spec.Template, owner, warn)
	case "ReplicationController":
		var rc corev1.ReplicationController
		if err := decode(&rc); err != nil {
			return nil, err
		}
		if rc.Spec.Template == nil {
			return nil, fmt.Errorf("ReplicationController %s: field spec.template: required", rc.Name)
		}
		return &rc, templateOf(cfg, tm, func(any) error { return nil }, &rc, &rc.ObjectMeta, rc.Spec.Template, owner, warn)
	}
	return nil, nil
}

// templateOf decodes obj and injects its pod template in place.
func templateOf(cfg Config, tm metav1.TypeMeta, decode func(any) error, obj any, meta *metav1.ObjectMeta,
	tmpl *corev1.PodTemplateSpec, owner func(metav1.ObjectMeta) Owner, warn func(string)) error {
	if err := decode(obj); err != nil {
		return err
	}
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	if pod.Namespace == "" {
		pod.Namespace = meta.Namespace
	}
	np, err := injectTemplate(cfg, tm.Kind, *meta, pod, owner(*meta), warn)
	if err != nil {
		return err
	}
	np.Namespace = tmpl.Namespace
	tmpl.ObjectMeta, tmpl.Spec = np.ObjectMeta, np.Spec
	return nil
}

// injectTemplate injects pod unless Required says no (then it warns and
// returns pod unchanged).
func injectTemplate(cfg Config, kind string, meta metav1.ObjectMeta, pod *corev1.Pod, owner Owner, warn func(string)) (*corev1.Pod, error) {
	name := meta.Name
	if meta.Namespace != "" {
		name = meta.Namespace + "/" + name
	}
	if ok, why := Required(pod, meta.Namespace); !ok {
		if warn != nil {
			warn(fmt.Sprintf("skipping %s %s: %s", kind, name, why))
		}
		return pod, nil
	}
	np, err := Pod(cfg, pod, owner)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", kind, name, err)
	}
	return np, nil
}

// marshalClean renders obj as YAML without the empty fields Go's types
// always carry (creationTimestamp: null, status: {}, resources: {}, ...).
func marshalClean(obj any) ([]byte, error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m any
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	clean(m)
	return yaml.Marshal(m)
}

var droppedWhenEmpty = []string{"status", "resources", "strategy", "updateStrategy"}

func clean(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if x == nil {
				delete(t, k)
				continue
			}
			clean(x)
			if m, ok := x.(map[string]any); ok && len(m) == 0 {
				for _, d := range droppedWhenEmpty {
					if k == d {
						delete(t, k)
					}
				}
			}
		}
	case []any:
		for _, x := range t {
			clean(x)
		}
	}
}
