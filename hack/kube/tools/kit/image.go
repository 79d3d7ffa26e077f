package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func imageMain(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	out := fs.String("o", "", "output tarball (docker-archive)")
	tag := fs.String("tag", "", "image reference, e.g. registry.istio.io/release/examples-bookinfo-details-v1:1.20.3")
	var files, env multiFlag
	fs.Var(&files, "file", "SRC:DEST, a file put into the image with mode 0755 (repeatable)")
	fs.Var(&env, "env", "K=V in the image's environment (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	entrypoint := fs.Args()
	switch {
	case *out == "":
		return fmt.Errorf("image: -o is required")
	case *tag == "":
		return fmt.Errorf("image: -tag is required")
	case len(files) == 0:
		return fmt.Errorf("image: at least one -file is required")
	case len(entrypoint) == 0:
		return fmt.Errorf("image: the entrypoint is required after --")
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("image: -tag %q: %w", *tag, err)
	}
	layerTar, err := layerFiles(files)
	if err != nil {
		return fmt.Errorf("image %s: %w", *tag, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("image %s: layer: %w", *tag, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("image %s: %w", *tag, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("image %s: %w", *tag, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = entrypoint
	cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, env...)
	cf.Config.WorkingDir = "/"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return fmt.Errorf("image %s: %w", *tag, err)
	}
	if err := tarball.WriteToFile(*out, ref, img); err != nil {
		return fmt.Errorf("image %s: write %s: %w", *tag, *out, err)
	}
	return nil
}

// layerFiles is a tar of the given SRC:DEST files (mode 0755, owned by root),
// their parent directories, and a world-writable /tmp.
func layerFiles(specs []string) ([]byte, error) {
	type entry struct {
		dest string
		data []byte
	}
	var entries []entry
	dirs := map[string]bool{"tmp": true}
	for _, s := range specs {
		src, dest, ok := strings.Cut(s, ":")
		if !ok || src == "" || !path.IsAbs(dest) {
			return nil, fmt.Errorf("-file %q: want SRC:/ABSOLUTE/DEST", s)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("-file %q: %w", s, err)
		}
		dest = strings.TrimPrefix(path.Clean(dest), "/")
		for d := path.Dir(dest); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
		entries = append(entries, entry{dest, data})
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, d := range sorted {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.dest, Mode: 0o755, Size: int64(len(e.data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
