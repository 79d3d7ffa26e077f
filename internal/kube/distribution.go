package kube

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"

	"github.com/bowline-mesh/bowline/internal/config"
)

// Every discovery replica reports what its proxies have in a ConfigMap of
// the root namespace, POD-distribution, labelled DistributionReportLabel
// (istiod's distribution reports, internal.istio.io/distribution-report);
// the leader sums the reports into each object's Reconciled condition.
const (
	DistributionReportLabel = "bowline.io/distribution-report"
	distributionReportKey   = "distribution-report"
	// reportHeartbeat rewrites an unchanged report, so the leader can tell
	// a live replica from one that went away without deleting its report.
	reportHeartbeat = 20 * time.Second
	// staleReport is how old a report may be before the leader ignores it.
	staleReport = time.Minute
)

// DistributionReport is one replica's report.
type DistributionReport struct {
	// Reporter is the replica (its pod name).
	Reporter string `json:"reporter"`
	// At is when it was written.
	At time.Time `json:"at"`
	// Proxies is how many proxies are connected to the replica.
	Proxies int `json:"proxies"`
	// Objects maps an object ("group/Kind/namespace/name") to the
	// generation the replica has in force and how many of its proxies have
	// taken it in.
	Objects map[string]ObjectProgress `json:"objects"`
}

// ObjectProgress is how far one object's generation reached a replica's proxies.
type ObjectProgress struct {
	Generation int64 `json:"generation"`
	Acked      int   `json:"acked"`
}

func reportKey(k config.Key) string { return k.Group + "/" + k.Kind + "/" + k.Namespace + "/" + k.Name }

// ReporterConfig configures a Reporter.
type ReporterConfig struct {
	Kube kubernetes.Interface
	// Namespace holds the reports (the root namespace).
	Namespace string
	// Pod is this replica's pod name: the report is POD-distribution,
	// owned by the pod when it exists (so it goes with the pod).
	Pod string
	// Store holds the configuration in force.
	Store *config.Store
	// Distribution returns, per connected proxy, the newest config store
	// version it has taken in whole (the xDS server's Distribution).
	Distribution func() map[string]uint64
	// Interval is how often the reporter looks; DefaultStatusInterval when zero.
	Interval time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives INFO/DEBUG logs; discarded when nil.
	Logger *slog.Logger
}

// Reporter writes this replica's DistributionReport. Every replica runs one.
type Reporter struct {
	cfg ReporterConfig
	log *slog.Logger
	// seen maps an object to its generation and the config store version
	// that generation was first seen in.
	seen    map[config.Key]seenGeneration
	last    DistributionReport // last written
	owner   []metav1.OwnerReference
	written bool
}

type seenGeneration struct {
	generation int64
	version    uint64
}

// NewReporter returns a reporter. It starts nothing.
func NewReporter(cfg ReporterConfig) *Reporter {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultStatusInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reporter{cfg: cfg, log: cfg.Logger, seen: map[config.Key]seenGeneration{}}
}

// Run reports every Interval until ctx ends, then deletes the report.
func (r *Reporter) Run(ctx context.Context) error {
	if pod, err := r.cfg.Kube.CoreV1().Pods(r.cfg.Namespace).Get(ctx, r.cfg.Pod, metav1.GetOptions{}); err == nil {
		r.owner = []metav1.OwnerReference{*metav1.NewControllerRef(pod, corev1.SchemeGroupVersion.WithKind("Pod"))}
	}
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		if err := r.report(ctx); err != nil && ctx.Err() == nil {
			r.log.Info("distribution report not written", slog.String(attrName, r.name()), slog.String(attrError, err.Error()))
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := r.cfg.Kube.CoreV1().ConfigMaps(r.cfg.Namespace).Delete(dctx, r.name(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				r.log.Info("distribution report not deleted", slog.String(attrName, r.name()), slog.String(attrError, err.Error()))
			}
			return nil
		case <-tick.C:
		}
	}
}

func (r *Reporter) name() string { return r.cfg.Pod + "-distribution" }

// build computes the report of the configuration in force.
func (r *Reporter) build() DistributionReport {
	snap := r.cfg.Store.Current()
	acked := r.cfg.Distribution()
	rep := DistributionReport{Reporter: r.cfg.Pod, Proxies: len(acked), Objects: map[string]ObjectProgress{}}
	present := map[config.Key]bool{}
	for _, o := range snap.Objects {
		if _, ok := kindOf(o); !ok || o.Meta.ResourceVersion == "" { // not from the cluster
			continue
		}
		key := o.Key()
		present[key] = true
		s, ok := r.seen[key]
		if !ok || s.generation != o.Meta.Generation {
			s = seenGeneration{generation: o.Meta.Generation, version: snap.Version}
			r.seen[key] = s
		}
		n := 0
		for _, v := range acked {
			if v >= s.version {
				n++
			}
		}
		rep.Objects[reportKey(key)] = ObjectProgress{Generation: s.generation, Acked: n}
	}
	maps.DeleteFunc(r.seen, func(k config.Key, _ seenGeneration) bool { return !present[k] })
	return rep
}

// report writes the report when it changed or the heartbeat is due.
func (r *Reporter) report(ctx context.Context) error {
	rep := r.build()
	now := r.cfg.Now()
	if r.written && rep.Proxies == r.last.Proxies && maps.Equal(rep.Objects, r.last.Objects) && now.Sub(r.last.At) < reportHeartbeat {
		return nil
	}
	rep.At = now.UTC()
	data, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: r.name(), Namespace: r.cfg.Namespace, Labels: map[string]string{DistributionReportLabel: "true"},
			OwnerReferences: r.owner},
		Data: map[string]string{distributionReportKey: string(data)},
	}
	api := r.cfg.Kube.CoreV1().ConfigMaps(r.cfg.Namespace)
	if _, err = api.Update(ctx, cm, metav1.UpdateOptions{FieldManager: writerFieldManager}); apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, cm, metav1.CreateOptions{FieldManager: writerFieldManager})
	}
	if err != nil {
		return err
	}
	r.last, r.written = rep, true
	return nil
}

// reports reads the replicas' reports from the ConfigMaps of a namespace
// through an informer. Only the leader runs it.
type reports struct {
	factory informers.SharedInformerFactory
	lister  listersv1.ConfigMapLister
	now     func() time.Time
	log     *slog.Logger
}

func newReports(kc kubernetes.Interface, namespace string, now func() time.Time, log *slog.Logger) *reports {
	f := informers.NewSharedInformerFactoryWithOptions(kc, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = DistributionReportLabel + "=true" }))
	return &reports{factory: f, lister: f.Core().V1().ConfigMaps().Lister(), now: now, log: log}
}

// start runs the informer until ctx ends and waits for its first list.
func (r *reports) start(ctx context.Context) {
	r.factory.Start(ctx.Done())
	r.factory.WaitForCacheSync(ctx.Done())
}

// fresh returns the reports written within staleReport.
func (r *reports) fresh() []DistributionReport {
	cms, err := r.lister.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []DistributionReport
	for _, cm := range cms {
		var rep DistributionReport
		if err := json.Unmarshal([]byte(cm.Data[distributionReportKey]), &rep); err != nil {
			r.log.Debug("distribution report unreadable", slog.String(attrName, cm.Name), slog.String(attrError, err.Error()))
			continue
		}
		if r.now().Sub(rep.At) > staleReport {
			continue // its replica went away without deleting it
		}
		out = append(out, rep)
	}
	return out
}

// progress sums the reports for the object key at generation gen: how many
// proxies have it, of how many.
func progress(reps []DistributionReport, key config.Key, gen int64) (acked, total int) {
	k := reportKey(key)
	for _, rep := range reps {
		total += rep.Proxies
		if p, ok := rep.Objects[k]; ok && p.Generation == gen {
			acked += p.Acked
		}
	}
	return acked, total
}
