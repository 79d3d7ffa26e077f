package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bowline-mesh/bowline/internal/ca"
)

// Secrets holding the CA, Istio's names and layout.
const (
	// PluginCASecret is the plug-in CA an operator provides (ca-cert.pem,
	// ca-key.pem, root-cert.pem, cert-chain.pem).
	PluginCASecret = "cacerts"
	// SelfSignedCASecret keeps the self-signed root discovery created, so
	// that restarts and other replicas sign with the same root.
	SelfSignedCASecret = "istio-ca-secret"
)

// caFiles are the cacerts layout's files, the keys of both Secrets.
var caFiles = []string{ca.CACertFile, ca.CAKeyFile, ca.RootCertFile, ca.CertChainFile}

// CASecrets keeps the CA's material in the cluster: a directory in Istio's
// cacerts layout, which the CA loads, is filled from the Secrets before the
// CA starts, and a root the CA created is saved back.
type CASecrets struct {
	client    kubernetes.Interface
	namespace string
	dir       string
	log       *slog.Logger
}

// NewCASecrets returns the Secrets of namespace (istio-system) mirrored in dir.
func NewCASecrets(client kubernetes.Interface, namespace, dir string, log *slog.Logger) *CASecrets {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &CASecrets{client: client, namespace: namespace, dir: dir, log: log}
}

// Prepare writes the CA material into the directory: the plug-in CA of
// Secret cacerts when it exists, else the self-signed root of Secret
// istio-ca-secret. It reports which Secret it used ("" when neither
// exists: the CA creates a root, and Save must keep it).
func (s *CASecrets) Prepare(ctx context.Context) (string, error) {
	for _, name := range []string{PluginCASecret, SelfSignedCASecret} {
		sec, err := s.client.CoreV1().Secrets(s.namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read Secret %s/%s: %w", s.namespace, name, err)
		}
		if err := s.write(sec); err != nil {
			return "", fmt.Errorf("write secret %s/%s: %w", s.namespace, name, err)
		}
		s.log.Info("ca material loaded from secret", slog.String(attrNamespace, s.namespace), slog.String(attrName, name))
		return name, nil
	}
	return "", nil
}

// write replaces the directory's CA files with the Secret's keys.
func (s *CASecrets) write(sec *corev1.Secret) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	for _, f := range caFiles {
		data, ok := sec.Data[f]
		if !ok {
			if f == ca.CertChainFile {
				continue // optional for a self-signed root
			}
			return fmt.Errorf("no key %s", f)
		}
		mode := os.FileMode(0o644)
		if f == ca.CAKeyFile {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(s.dir, f), data, mode); err != nil {
			return err
		}
	}
	return nil
}

// ErrAdopted says Save found a root another replica saved first; the
// directory now holds that one and the CA must Reload.
var ErrAdopted = errors.New("another replica's root was saved first")

// Save keeps the root the CA created in the directory as Secret
// istio-ca-secret. When that Secret appeared meanwhile (another replica
// won), its root replaces the directory's and Save returns ErrAdopted.
func (s *CASecrets) Save(ctx context.Context) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SelfSignedCASecret, Namespace: s.namespace, Labels: map[string]string{"app": "istiod"}},
		Type:       "istio.io/ca-root",
		Data:       map[string][]byte{},
	}
	for _, f := range caFiles {
		data, err := os.ReadFile(filepath.Join(s.dir, f))
		if errors.Is(err, os.ErrNotExist) && f == ca.CertChainFile {
			continue
		}
		if err != nil {
			return fmt.Errorf("save ca root: %w", err)
		}
		sec.Data[f] = data
	}
	_, err := s.client.CoreV1().Secrets(s.namespace).Create(ctx, sec, metav1.CreateOptions{FieldManager: writerFieldManager})
	if err == nil {
		s.log.Info("ca root saved to secret", slog.String(attrNamespace, s.namespace), slog.String(attrName, SelfSignedCASecret))
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("save ca root to Secret %s/%s: %w", s.namespace, SelfSignedCASecret, err)
	}
	got, err := s.client.CoreV1().Secrets(s.namespace).Get(ctx, SelfSignedCASecret, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read Secret %s/%s: %w", s.namespace, SelfSignedCASecret, err)
	}
	if err := s.write(got); err != nil {
		return fmt.Errorf("write secret %s/%s: %w", s.namespace, SelfSignedCASecret, err)
	}
	return ErrAdopted
}
