package kube

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseName is the Lease the discovery replicas elect their writer with.
const LeaseName = "bowline-discovery-leader"

// Leader runs tasks only while this replica holds the Lease, so that of
// several discovery replicas one writes (root ConfigMaps, webhook caBundle,
// status) and the others only serve. Leadership lost mid-way cancels the
// tasks' context; the replica then campaigns again.
type Leader struct {
	client    kubernetes.Interface
	namespace string
	identity  string
	log       *slog.Logger
	// Lease timings (client-go's): the defaults are Kubernetes' own controllers'.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// NewLeader returns an elector for identity (the pod name) on the Lease in namespace.
func NewLeader(client kubernetes.Interface, namespace, identity string, log *slog.Logger) *Leader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Leader{client: client, namespace: namespace, identity: identity, log: log,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
}

// Run campaigns until ctx ends and runs task whenever this replica leads.
func (l *Leader) Run(ctx context.Context, task func(ctx context.Context) error) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: l.namespace},
		Client:     l.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.identity},
	}
	var taskErr error
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: l.LeaseDuration, RenewDeadline: l.RenewDeadline, RetryPeriod: l.RetryPeriod,
			ReleaseOnCancel: true, Name: LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					l.log.Info("leading", slog.String(attrLease, LeaseName), slog.String(attrIdentity, l.identity))
					if err := task(ctx); err != nil && ctx.Err() == nil {
						taskErr = err
					}
				},
				OnStoppedLeading: func() {
					l.log.Info("not leading", slog.String(attrLease, LeaseName), slog.String(attrIdentity, l.identity))
				},
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
		if taskErr != nil {
			return taskErr
		}
	}
	return nil
}
