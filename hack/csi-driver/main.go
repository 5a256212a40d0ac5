// nodeops-csi: the local cluster's CSI driver for VolumeSnapshots on the real node.
//
// The Kubernetes CSI project's hostpath driver is not served by the module proxy here, so
// the project keeps this small one of its own, written against the CSI specification
// (github.com/container-storage-interface/spec) and the kubelet's plugin registration API
// (k8s.io/kubelet/pkg/apis/pluginregistration/v1). It runs as a root process on the
// machine beside the real node's kubelet, and serves, on one socket:
//
//   - Identity and Controller for the upstream sidecars: csi-provisioner (CreateVolume,
//     DeleteVolume) and csi-snapshotter (CreateSnapshot, DeleteSnapshot);
//   - Node for the kubelet (NodePublishVolume: a bind mount of the volume's directory
//     into the pod; no staging);
//
// and, on a second socket in the kubelet's plugins_registry directory (a socket path holds
// at most 107 bytes, and the kubelet dials that path too), the registration
// service through which the kubelet discovers it (what node-driver-registrar does for
// other drivers).
//
// Storage: a volume is a directory <state>/volumes/<id>; a snapshot is a full copy of its
// source volume's directory, <state>/snapshots/<id>, with <id>.json beside it (source,
// size, time). A volume created from a snapshot starts as a copy of it, so what a restored
// pod reads is what the snapshot copied. Copies keep ownership, modes and times (cp -a).
// Names map to ids by hash, so a repeated CreateVolume or CreateSnapshot (the sidecars
// retry) returns the same object. No capacity is enforced.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	registration "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const version = "0.1.0"

type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	registration.UnimplementedRegistrationServer

	name     string
	nodeID   string
	state    string
	endpoint string
	// One operation at a time: the sidecars and the kubelet call concurrently, and a copy
	// must not race the deletion of its source.
	mu sync.Mutex
}

type snapshotMeta struct {
	Source    string `json:"source"`
	SizeBytes int64  `json:"sizeBytes"`
	CreatedAt int64  `json:"createdAtUnixNano"`
}

func main() {
	var d driver
	var registry string
	flag.StringVar(&d.name, "driver-name", "hostpath.csi.nodeops.dev", "the CSI driver's name")
	flag.StringVar(&d.nodeID, "node-id", "", "the node this driver serves (the kubelet's node name)")
	flag.StringVar(&d.state, "state-dir", "", "where volumes and snapshots are kept")
	flag.StringVar(&d.endpoint, "endpoint", "", "the CSI socket (a path)")
	flag.StringVar(&registry, "registration-socket", "", "the registration socket, in the kubelet's plugins_registry directory (empty: do not register)")
	flag.Parse()
	if d.nodeID == "" || d.state == "" || d.endpoint == "" {
		log.Fatal("--node-id, --state-dir and --endpoint are required")
	}
	for _, sub := range []string{"volumes", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(d.state, sub), 0o755); err != nil {
			log.Fatal(err)
		}
	}
	csiServer, err := serve(d.endpoint, func(s *grpc.Server) {
		csi.RegisterIdentityServer(s, &d)
		csi.RegisterControllerServer(s, &d)
		csi.RegisterNodeServer(s, &d)
	})
	if err != nil {
		log.Fatal(err)
	}
	servers := []*grpc.Server{csiServer}
	if registry != "" {
		reg, err := serve(registry, func(s *grpc.Server) { registration.RegisterRegistrationServer(s, &d) })
		if err != nil {
			log.Fatal(err)
		}
		servers = append(servers, reg)
	}
	log.Printf("%s %s serving on %s (node %s, state %s)", d.name, version, d.endpoint, d.nodeID, d.state)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	for _, s := range servers {
		s.Stop()
	}
}

func serve(path string, register func(*grpc.Server)) (*grpc.Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(logged))
	register(s)
	go func() {
		if err := s.Serve(l); err != nil {
			log.Printf("serving %s: %v", path, err)
		}
	}()
	return s, nil
}

func logged(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		log.Printf("%s: %v", info.FullMethod, err)
	} else if !strings.Contains(info.FullMethod, "Probe") && !strings.Contains(info.FullMethod, "GetCapabilities") {
		log.Printf("%s ok", info.FullMethod)
	}
	return resp, err
}

// --- registration (kubelet) ---------------------------------------------------------

func (d *driver) GetInfo(context.Context, *registration.InfoRequest) (*registration.PluginInfo, error) {
	return &registration.PluginInfo{
		Type:              registration.CSIPlugin,
		Name:              d.name,
		Endpoint:          d.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (d *driver) NotifyRegistrationStatus(_ context.Context, s *registration.RegistrationStatus) (*registration.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		log.Printf("the kubelet refused the registration: %s", s.Error)
	}
	return &registration.RegistrationStatusResponse{}, nil
}

// --- identity -----------------------------------------------------------------------

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.name, VendorVersion: version}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
			Type: csi.PluginCapability_Service_CONTROLLER_SERVICE,
		}},
	}}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// --- controller ---------------------------------------------------------------------

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
		})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

func idFor(prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	return prefix + hex.EncodeToString(sum[:12])
}

func (d *driver) volumeDir(id string) (string, error) {
	if !strings.HasPrefix(id, "vol-") || strings.ContainsAny(id, "/.") {
		return "", status.Errorf(codes.NotFound, "no volume %q", id)
	}
	return filepath.Join(d.state, "volumes", id), nil
}

func (d *driver) snapshotDir(id string) (string, error) {
	if !strings.HasPrefix(id, "snap-") || strings.ContainsAny(id, "/.") {
		return "", status.Errorf(codes.NotFound, "no snapshot %q", id)
	}
	return filepath.Join(d.state, "snapshots", id), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// copyTree makes dst a copy of src's contents (ownership, modes, times), through a
// temporary directory renamed at the end, so that dst never exists half copied.
func copyTree(src, dst string) error {
	tmp := dst + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-a", src+"/.", tmp+"/").CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, tmp, err, out)
	}
	return os.Rename(tmp, dst)
}

func treeSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func (d *driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "a name is required")
	}
	for _, c := range req.GetVolumeCapabilities() {
		if c.GetMount() == nil {
			return nil, status.Error(codes.InvalidArgument, "only filesystem volumes are served")
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id := idFor("vol-", req.GetName())
	dir, _ := d.volumeDir(id)
	source := req.GetVolumeContentSource()
	if !exists(dir) {
		switch {
		case source.GetSnapshot() != nil:
			from, err := d.snapshotDir(source.GetSnapshot().GetSnapshotId())
			if err != nil || !exists(from) {
				return nil, status.Errorf(codes.NotFound, "no snapshot %q", source.GetSnapshot().GetSnapshotId())
			}
			if err := copyTree(from, dir); err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
		case source.GetVolume() != nil:
			from, err := d.volumeDir(source.GetVolume().GetVolumeId())
			if err != nil || !exists(from) {
				return nil, status.Errorf(codes.NotFound, "no volume %q", source.GetVolume().GetVolumeId())
			}
			if err := copyTree(from, dir); err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
		default:
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
		}
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      id,
		CapacityBytes: req.GetCapacityRange().GetRequiredBytes(),
		ContentSource: source,
	}}, nil
}

func (d *driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, err := d.volumeDir(req.GetVolumeId())
	if err != nil {
		return &csi.DeleteVolumeResponse{}, nil // already gone: deletion is idempotent
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	dir, err := d.volumeDir(req.GetVolumeId())
	if err != nil || !exists(dir) {
		return nil, status.Errorf(codes.NotFound, "no volume %q", req.GetVolumeId())
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeCapabilities: req.GetVolumeCapabilities(),
	}}, nil
}

func (d *driver) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" || req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "a name and a source volume are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id := idFor("snap-", req.GetName())
	dir, _ := d.snapshotDir(id)
	metaPath := dir + ".json"
	var meta snapshotMeta
	if b, err := os.ReadFile(metaPath); err == nil {
		if err := json.Unmarshal(b, &meta); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if meta.Source != req.GetSourceVolumeId() {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %q was taken of %s", req.GetName(), meta.Source)
		}
	} else {
		from, err := d.volumeDir(req.GetSourceVolumeId())
		if err != nil || !exists(from) {
			return nil, status.Errorf(codes.NotFound, "no volume %q", req.GetSourceVolumeId())
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if err := copyTree(from, dir); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		meta = snapshotMeta{Source: req.GetSourceVolumeId(), SizeBytes: treeSize(dir), CreatedAt: time.Now().UnixNano()}
		b, _ := json.Marshal(meta)
		if err := os.WriteFile(metaPath, b, 0o644); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	return &csi.CreateSnapshotResponse{Snapshot: &csi.Snapshot{
		SnapshotId:     id,
		SourceVolumeId: meta.Source,
		SizeBytes:      meta.SizeBytes,
		CreationTime:   timestamppb.New(time.Unix(0, meta.CreatedAt)),
		ReadyToUse:     true,
	}}, nil
}

func (d *driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, err := d.snapshotDir(req.GetSnapshotId())
	if err != nil {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := os.Remove(dir + ".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// --- node ---------------------------------------------------------------------------

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.nodeID}, nil
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

// mounted reports whether path is a mount point (an exact match in /proc/self/mountinfo;
// the kubelet's paths hold no spaces or escapes).
func mounted(path string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true, nil
		}
	}
	return false, nil
}

func (d *driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	target := req.GetTargetPath()
	if target == "" || req.GetVolumeCapability().GetMount() == nil {
		return nil, status.Error(codes.InvalidArgument, "a target path and a filesystem volume are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, err := d.volumeDir(req.GetVolumeId())
	if err != nil || !exists(dir) {
		return nil, status.Errorf(codes.NotFound, "no volume %q", req.GetVolumeId())
	}
	if ok, err := mounted(target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	} else if ok {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := syscall.Mount(dir, target, "", syscall.MS_BIND, ""); err != nil {
		return nil, status.Errorf(codes.Internal, "bind mount %s on %s: %v", dir, target, err)
	}
	if req.GetReadonly() {
		flags := uintptr(syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY)
		if err := syscall.Mount("", target, "", flags, ""); err != nil {
			_ = syscall.Unmount(target, 0)
			return nil, status.Errorf(codes.Internal, "read-only remount of %s: %v", target, err)
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	target := req.GetTargetPath()
	d.mu.Lock()
	defer d.mu.Unlock()
	if ok, err := mounted(target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	} else if ok {
		if err := syscall.Unmount(target, 0); err != nil {
			return nil, status.Errorf(codes.Internal, "unmount %s: %v", target, err)
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}
