package kube

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/gatewayapi"
)

// writeGatewayStatus writes a Gateway's conditions, listeners and
// addresses. Programmed waits for the Service's address and a ready
// gateway pod, so that a Programmed Gateway answers.
func (g *GatewayDeployer) writeGatewayStatus(ctx context.Context, st gatewayapi.Status, deployment string, addrs []gwv1.GatewayStatusAddress, ready bool) {
	conds := make([]metav1.Condition, len(st.Conditions))
	copy(conds, st.Conditions)
	for i, c := range conds {
		if c.Type != string(gwv1.GatewayConditionProgrammed) || c.Status != metav1.ConditionTrue {
			continue
		}
		switch {
		case len(addrs) == 0:
			conds[i].Status, conds[i].Reason, conds[i].Message = metav1.ConditionFalse, string(gwv1.GatewayReasonAddressNotAssigned), "Waiting for the address of the Service "+deployment
		case !ready:
			conds[i].Status, conds[i].Reason, conds[i].Message = metav1.ConditionFalse, string(gwv1.GatewayReasonPending), "Waiting for a ready pod of the Deployment "+deployment
		}
	}
	g.writeStatus(ctx, st, func(u *unstructured.Unstructured) (any, error) {
		var cur gwv1.GatewayStatus
		if err := fromUnstructured(u, &cur, "status"); err != nil {
			return nil, err
		}
		next := &gwv1.GatewayStatus{Addresses: addrs, Conditions: mergeConditions(cur.Conditions, conds)}
		for _, l := range st.Listeners {
			var old []metav1.Condition
			for _, cl := range cur.Listeners {
				if cl.Name == l.Name {
					old = cl.Conditions
				}
			}
			l.Conditions = mergeConditions(old, l.Conditions)
			next.Listeners = append(next.Listeners, l)
		}
		return next, nil
	}, addrs, ready)
}

// writeRouteStatus writes a route's parents: Bowline's, keeping the
// entries of other controllers.
func (g *GatewayDeployer) writeRouteStatus(ctx context.Context, st gatewayapi.Status) {
	g.writeStatus(ctx, st, func(u *unstructured.Unstructured) (any, error) {
		var cur gwv1.RouteStatus
		if err := fromUnstructured(u, &cur, "status"); err != nil {
			return nil, err
		}
		next := &gwv1.RouteStatus{}
		for _, p := range cur.Parents {
			if string(p.ControllerName) != gatewayapi.ControllerName {
				next.Parents = append(next.Parents, p)
			}
		}
		for _, p := range st.Parents {
			var old []metav1.Condition
			for _, cp := range cur.Parents {
				if string(cp.ControllerName) == gatewayapi.ControllerName && reflect.DeepEqual(cp.ParentRef, p.ParentRef) {
					old = cp.Conditions
				}
			}
			p.Conditions = mergeConditions(old, p.Conditions)
			next.Parents = append(next.Parents, p)
		}
		return next, nil
	})
}

// writeStatus writes the status build returns for the object of st, read
// fresh from the cluster, unless it is what was last written for the same
// inputs (st and extra) or what the object already has.
func (g *GatewayDeployer) writeStatus(ctx context.Context, st gatewayapi.Status, build func(*unstructured.Unstructured) (any, error), extra ...any) {
	key := st.Kind + "/" + st.Namespace + "/" + st.Name
	want := hashOf(st, extra)
	if g.written[key] == want {
		return
	}
	fail := func(err error) {
		g.log.Info("gateway api status not written", slog.String(attrKind, st.Kind), slog.String(attrNamespace, st.Namespace),
			slog.String(attrName, st.Name), slog.String(attrError, err.Error()))
	}
	res := g.cfg.Dynamic.Resource(gvrOf(st.Kind)).Namespace(st.Namespace)
	u, err := res.Get(ctx, st.Name, metav1.GetOptions{})
	if err != nil {
		fail(err)
		return
	}
	next, err := build(u)
	if err != nil {
		fail(err)
		return
	}
	m, err := toUnstructuredMap(next)
	if err != nil {
		fail(err)
		return
	}
	if cur, _, _ := unstructured.NestedMap(u.Object, "status"); reflect.DeepEqual(cur, m) {
		g.written[key] = want
		return
	}
	u.Object["status"] = m
	if _, err := res.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		fail(err) // a conflict: the next round reads it again
		return
	}
	g.written[key] = want
	g.log.Debug("gateway api status written", slog.String(attrKind, st.Kind), slog.String(attrNamespace, st.Namespace), slog.String(attrName, st.Name))
}

// mergeConditions returns want with each condition's lastTransitionTime
// kept from the condition of the same type in old when its status did not
// change, else now.
func mergeConditions(old, want []metav1.Condition) []metav1.Condition {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	out := make([]metav1.Condition, 0, len(want))
	for _, c := range want {
		c.LastTransitionTime = now
		for _, o := range old {
			if o.Type == c.Type && o.Status == c.Status && !o.LastTransitionTime.IsZero() {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		out = append(out, c)
	}
	return out
}

// conditionsOf reads a conditions list at fields of u.
func conditionsOf(u *unstructured.Unstructured, fields ...string) []metav1.Condition {
	var out []metav1.Condition
	list, ok, _ := unstructured.NestedSlice(u.Object, fields...)
	if !ok {
		return nil
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil
	}
	_ = json.Unmarshal(b, &out)
	return out
}

// fromUnstructured decodes the map at fields of u into v (left empty when absent).
func fromUnstructured(u *unstructured.Unstructured, v any, fields ...string) error {
	m, ok, err := unstructured.NestedMap(u.Object, fields...)
	if err != nil || !ok {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// toUnstructuredMap is v (a pointer) in the form the API server's objects
// have, so that it compares with them.
func toUnstructuredMap(v any) (map[string]any, error) {
	return runtime.DefaultUnstructuredConverter.ToUnstructured(v)
}

// deploymentReady reports whether a Deployment has a ready, updated pod.
func deploymentReady(d *appsv1.Deployment) bool {
	return d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas > 0 && d.Status.UpdatedReplicas > 0
}
