package kube

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/bowline-mesh/bowline/internal/config"
)

// ConditionReconciled is the condition discovery writes on Istio objects:
// True once every connected proxy has taken in the object's current
// generation ("N/M proxies up to date."), as istiod wrote it with
// PILOT_ENABLE_STATUS and config distribution tracking (Istio 1.22 and
// before; 1.23 dropped that tracking and kept observedGeneration and
// validationMessages, which discovery writes as well).
const ConditionReconciled = "Reconciled"

// DefaultStatusInterval is how often the status writer compares what
// proxies have with what it last wrote.
const DefaultStatusInterval = time.Second

// ValidationMessage is one analysis message as Istio writes it in
// status.validationMessages (istio.io/api analysis/v1alpha1
// AnalysisMessageBase): the code, the level and the documentation page.
type ValidationMessage struct {
	// Code is the message code, as "IST0101".
	Code string
	// Level is "ERROR", "WARNING" or "INFO".
	Level string
	// DocumentationURL is the code's page.
	DocumentationURL string
}

// StatusConfig configures a StatusWriter.
type StatusConfig struct {
	// Client writes the status subresource of Istio's kinds.
	Client dynamic.Interface
	// Kube reads the replicas' distribution reports (see Reporter).
	Kube kubernetes.Interface
	// Namespace holds the reports (the root namespace).
	Namespace string
	// Store holds the configuration in force; the writer covers its
	// objects that came from the cluster.
	Store *config.Store
	// Analyze, when set (analysis enabled), returns the analysis messages of
	// a snapshot by object; they are written to status.validationMessages,
	// replacing what was there. When nil, validationMessages are left alone.
	Analyze func(*config.Snapshot) map[config.Key][]ValidationMessage
	// Interval is how often the writer looks; DefaultStatusInterval when zero.
	Interval time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives INFO/DEBUG logs; discarded when nil.
	Logger *slog.Logger
}

// StatusWriter writes Istio's status on the cluster's Istio objects:
// observedGeneration, the Reconciled condition (summing every replica's
// fresh DistributionReport) and, with analysis, validationMessages. Only
// the leader runs it.
type StatusWriter struct {
	cfg     StatusConfig
	log     *slog.Logger
	reports *reports
	// written is what was last written (or found) per object.
	written map[config.Key]desiredStatus
}

// desiredStatus is what the writer wants an object's status to say.
type desiredStatus struct {
	generation int64
	// reconciled is "True" or "False"; "" when no proxy is connected (no
	// condition is written then, as istiod wrote none without proxies).
	reconciled string
	message    string
	// messages is nil when analysis is off (left alone).
	messages []ValidationMessage
}

// NewStatusWriter returns a writer. It starts nothing.
func NewStatusWriter(cfg StatusConfig) *StatusWriter {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultStatusInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &StatusWriter{cfg: cfg, log: cfg.Logger, written: map[config.Key]desiredStatus{},
		reports: newReports(cfg.Kube, cfg.Namespace, cfg.Now, cfg.Logger)}
}

// Run writes status every Interval until ctx ends.
func (w *StatusWriter) Run(ctx context.Context) error {
	w.reports.start(ctx)
	defer w.reports.factory.Shutdown()
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	for {
		w.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sync computes every cluster object's status and writes those that changed.
func (w *StatusWriter) sync(ctx context.Context) {
	snap := w.cfg.Store.Current()
	reps := w.reports.fresh()
	var analysis map[config.Key][]ValidationMessage
	if w.cfg.Analyze != nil {
		analysis = w.cfg.Analyze(snap)
	}
	present := make(map[config.Key]bool, len(snap.Objects))
	for _, o := range snap.Objects {
		k, ok := kindOf(o)
		if !ok || o.Meta.ResourceVersion == "" { // not from the cluster
			continue
		}
		key := o.Key()
		present[key] = true
		want := desiredStatus{generation: o.Meta.Generation}
		if upToDate, total := progress(reps, key, o.Meta.Generation); total > 0 {
			want.reconciled = "False"
			if upToDate == total {
				want.reconciled = "True"
			}
			want.message = fmt.Sprintf("%d/%d proxies up to date.", upToDate, total)
		}
		if w.cfg.Analyze != nil {
			want.messages = analysis[key]
			if want.messages == nil {
				want.messages = []ValidationMessage{}
			}
		}
		if want.reconciled == "" && want.messages == nil {
			continue // nothing to say yet
		}
		if last, ok := w.written[key]; ok && reflect.DeepEqual(last, want) {
			continue
		}
		if err := w.write(ctx, k, o, want); err != nil {
			if ctx.Err() == nil {
				w.log.Info("status not written", slog.String(attrKind, key.Kind), slog.String(attrNamespace, key.Namespace),
					slog.String(attrName, key.Name), slog.String(attrError, err.Error()))
			}
			continue
		}
		w.written[key] = want
	}
	maps.DeleteFunc(w.written, func(k config.Key, _ desiredStatus) bool { return !present[k] })
}

// write updates the object's status subresource to want, keeping the
// conditions of other types. It writes nothing when the object's status
// already says it, or when the object in the cluster has moved to another
// generation (the next sync sees that one).
func (w *StatusWriter) write(ctx context.Context, k istioKind, o *config.Object, want desiredStatus) error {
	api := w.cfg.Client.Resource(schema.GroupVersionResource{Group: k.group, Version: k.version, Resource: k.resource}).Namespace(o.Meta.Namespace)
	obj, err := api.Get(ctx, o.Meta.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil // deleted; the store follows
	}
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if obj.GetGeneration() != want.generation {
		return fmt.Errorf("generation %d in the cluster, %d in force: written at the next look", obj.GetGeneration(), want.generation)
	}
	status, _, _ := unstructured.NestedMap(obj.Object, "status")
	if status == nil {
		status = map[string]any{}
	}
	changed := false
	if g, _, _ := unstructured.NestedInt64(status, "observedGeneration"); g != want.generation {
		status["observedGeneration"] = want.generation
		changed = true
	}
	if want.reconciled != "" && setCondition(status, want.reconciled, want.message, w.cfg.Now()) {
		changed = true
	}
	if want.messages != nil {
		msgs := make([]any, 0, len(want.messages))
		for _, m := range want.messages {
			msgs = append(msgs, map[string]any{"documentationUrl": m.DocumentationURL, "level": m.Level, "type": map[string]any{"code": m.Code}})
		}
		if old, _, _ := unstructured.NestedSlice(status, "validationMessages"); !reflect.DeepEqual(old, msgs) && (len(old) > 0 || len(msgs) > 0) {
			status["validationMessages"] = msgs
			changed = true
		}
	}
	if !changed {
		return nil
	}
	obj.Object["status"] = status
	if _, err := api.UpdateStatus(ctx, obj, metav1.UpdateOptions{FieldManager: writerFieldManager}); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	w.log.Debug("status written", slog.String(attrKind, o.GVK.Kind), slog.String(attrNamespace, o.Meta.Namespace),
		slog.String(attrName, o.Meta.Name), slog.String("reconciled", want.message))
	return nil
}

// setCondition sets the Reconciled condition in status and reports whether
// it changed: lastTransitionTime moves only when the status flips,
// lastProbeTime whenever the condition is written.
func setCondition(status map[string]any, value, message string, now time.Time) bool {
	conds, _, _ := unstructured.NestedSlice(status, "conditions")
	ts := now.UTC().Format(time.RFC3339)
	for i, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != ConditionReconciled {
			continue
		}
		if m["status"] == value && m["message"] == message {
			return false
		}
		if m["status"] != value {
			m["lastTransitionTime"] = ts
		}
		m["status"], m["message"], m["lastProbeTime"] = value, message, ts
		conds[i] = m
		status["conditions"] = conds
		return true
	}
	status["conditions"] = append(conds, map[string]any{"type": ConditionReconciled, "status": value, "message": message,
		"lastProbeTime": ts, "lastTransitionTime": ts})
	return true
}

// kindOf returns the cluster kind of an object of the store.
func kindOf(o *config.Object) (istioKind, bool) {
	if o.IsGatewayAPI() {
		return istioKind{}, false
	}
	for _, k := range istioKinds {
		if k.group == o.GVK.Group && k.kind == o.GVK.Kind {
			return k, true
		}
	}
	return istioKind{}, false
}
