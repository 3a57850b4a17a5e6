// Command hashvectors writes what ferrokube's controller-manager needs to name
// ReplicaSets and ControllerRevisions exactly as the stock one does:
//
//   - a schema of the Go types reachable from v1.PodTemplateSpec (Go type
//     names, field order, JSON names and options), so a Rust printer can
//     reproduce go-spew's `%#v` dump and encoding/json's output;
//   - test vectors: for each template of the corpus, the template as the
//     apiserver serves it (defaulted, round-tripped through the internal
//     version and protobuf, as kube-controller-manager's informers see it),
//     its spew dump, controller.ComputeHash with and without a collision
//     count, the DaemonSet/StatefulSet getPatch bytes and
//     history.HashControllerRevision of them.
//
// Run through hack/hash-vectors; it is never built into a shipped binary.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	apps "k8s.io/kubernetes/pkg/apis/apps"
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	"k8s.io/kubernetes/pkg/controller"
	"k8s.io/kubernetes/pkg/controller/history"
	hashutil "k8s.io/kubernetes/pkg/util/hash"
	"k8s.io/utils/dump"
	"sigs.k8s.io/yaml"
)

// ---- schema ----------------------------------------------------------------

type schemaField struct {
	Name      string `json:"name"`
	JSON      string `json:"json"`
	OmitEmpty bool   `json:"omitempty,omitempty"`
	OmitZero  bool   `json:"omitzero,omitempty"`
	Inline    bool   `json:"inline,omitempty"`
	Type      string `json:"type"`
}

type schemaType struct {
	// Go is what reflect.Type.String() (and so spew) prints.
	Go     string        `json:"go"`
	Kind   string        `json:"kind"`
	Elem   string        `json:"elem,omitempty"`
	Key    string        `json:"key,omitempty"`
	Fields []schemaField `json:"fields,omitempty"`
	// Marshaler: the type has its own MarshalJSON, so its JSON form is not
	// its fields.
	Marshaler bool `json:"marshaler,omitempty"`
}

var jsonMarshaler = reflect.TypeOf((*json.Marshaler)(nil)).Elem()

func typeID(t reflect.Type) string {
	if t.Name() != "" {
		if t.PkgPath() == "" {
			return t.Name()
		}
		return t.PkgPath() + "." + t.Name()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "*" + typeID(t.Elem())
	case reflect.Slice:
		return "[]" + typeID(t.Elem())
	case reflect.Map:
		return "map[" + typeID(t.Key()) + "]" + typeID(t.Elem())
	}
	return t.String()
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "uint"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.Pointer:
		return "ptr"
	}
	return k.String()
}

func walk(t reflect.Type, out map[string]schemaType) string {
	id := typeID(t)
	if _, ok := out[id]; ok {
		return id
	}
	st := schemaType{Go: t.String(), Kind: kindName(t.Kind())}
	st.Marshaler = t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler)
	out[id] = st // placeholder against recursion
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		st.Elem = walk(t.Elem(), out)
	case reflect.Map:
		st.Key = walk(t.Key(), out)
		st.Elem = walk(t.Elem(), out)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			sf := schemaField{Name: f.Name, JSON: f.Name, Type: walk(f.Type, out)}
			if tag, ok := f.Tag.Lookup("json"); ok {
				parts := strings.Split(tag, ",")
				if parts[0] != "" {
					sf.JSON = parts[0]
				}
				for _, o := range parts[1:] {
					switch o {
					case "omitempty":
						sf.OmitEmpty = true
					case "omitzero":
						sf.OmitZero = true
					case "inline":
						sf.Inline = true
					}
				}
				if parts[0] == "-" {
					sf.JSON = "-"
				}
			}
			if f.Anonymous && sf.JSON == f.Name {
				sf.Inline = true
			}
			st.Fields = append(st.Fields, sf)
		}
	case reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		panic(fmt.Sprintf("unsupported kind %s in %s", t.Kind(), t))
	}
	out[id] = st
	return id
}

// ---- vectors ---------------------------------------------------------------

type revisionHash struct {
	Probe *int32 `json:"probe"`
	Hash  string `json:"hash"`
}

type templateHash struct {
	CollisionCount *int32 `json:"collisionCount"`
	Hash           string `json:"hash"`
}

type vector struct {
	Name string `json:"name"`
	// Template is the template as the apiserver serves it.
	Template json.RawMessage `json:"template"`
	// Dump is spew's %#v of the template (what ComputeHash feeds FNV).
	Dump           string         `json:"dump"`
	TemplateHashes []templateHash `json:"templateHashes"`
	// Patch is getPatch's output (identical for DaemonSet and StatefulSet).
	Patch          string         `json:"patch"`
	RevisionHashes []revisionHash `json:"revisionHashes"`
}

type quantityVector struct {
	// In is what a client sent; Canonical what the apiserver serves back.
	In        string `json:"in"`
	Canonical string `json:"canonical"`
	// Dump is spew's %#v of ParseQuantity(Canonical), as a map value.
	Dump string `json:"dump"`
}

func i32(v int32) *int32 { return &v }

// asServed applies what the apiserver does to a stored Deployment that
// matters to the template: defaulting, conversion through the internal
// version and back, and the protobuf round trip to the informer.
func asServed(d *appsv1.Deployment) (*appsv1.Deployment, error) {
	legacyscheme.Scheme.Default(d)
	internal := &apps.Deployment{}
	if err := legacyscheme.Scheme.Convert(d, internal, nil); err != nil {
		return nil, err
	}
	back := &appsv1.Deployment{}
	if err := legacyscheme.Scheme.Convert(internal, back, nil); err != nil {
		return nil, err
	}
	raw, err := back.Marshal()
	if err != nil {
		return nil, err
	}
	served := &appsv1.Deployment{}
	if err := served.Unmarshal(raw); err != nil {
		return nil, err
	}
	return served, nil
}

// daemonSetPatch is upstream daemon.getPatch (unexported there).
func daemonSetPatch(ds *appsv1.DaemonSet) ([]byte, error) {
	dsBytes, err := json.Marshal(ds)
	if err != nil {
		return nil, err
	}
	return replaceTemplate(dsBytes)
}

// statefulSetPatch is upstream statefulset.getPatch (unexported there).
func statefulSetPatch(set *appsv1.StatefulSet) ([]byte, error) {
	codec := scheme.Codecs.LegacyCodec(appsv1.SchemeGroupVersion)
	data, err := runtime.Encode(codec, set)
	if err != nil {
		return nil, err
	}
	return replaceTemplate(data)
}

func replaceTemplate(data []byte) ([]byte, error) {
	var raw map[string]interface{}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	spec := raw["spec"].(map[string]interface{})
	template := spec["template"].(map[string]interface{})
	template["$patch"] = "replace"
	return json.Marshal(map[string]interface{}{"spec": map[string]interface{}{"template": template}})
}

func makeVector(name string, d *appsv1.Deployment) (vector, error) {
	served, err := asServed(d)
	if err != nil {
		return vector{}, err
	}
	t := served.Spec.Template
	v := vector{Name: name, Dump: dump.ForHash(t)}
	if v.Template, err = json.Marshal(t); err != nil {
		return vector{}, err
	}
	// DeepHashObject is what ComputeHash runs first: check the dump is it.
	h := fnv.New32a()
	hashutil.DeepHashObject(h, t)
	h2 := fnv.New32a()
	h2.Write([]byte(v.Dump))
	if h.Sum32() != h2.Sum32() {
		return vector{}, fmt.Errorf("%s: dump.ForHash is not what DeepHashObject hashes", name)
	}
	for _, c := range []*int32{nil, i32(0), i32(1), i32(7), i32(2147483647), i32(-1)} {
		v.TemplateHashes = append(v.TemplateHashes, templateHash{c, controller.ComputeHash(&t, c)})
	}
	ds := &appsv1.DaemonSet{ObjectMeta: served.ObjectMeta}
	ds.Spec.Template = t
	ds.Spec.Selector = served.Spec.Selector
	dsPatch, err := daemonSetPatch(ds)
	if err != nil {
		return vector{}, err
	}
	sts := &appsv1.StatefulSet{ObjectMeta: served.ObjectMeta}
	sts.Spec.Template = t
	sts.Spec.Selector = served.Spec.Selector
	stsPatch, err := statefulSetPatch(sts)
	if err != nil {
		return vector{}, err
	}
	if !bytes.Equal(dsPatch, stsPatch) {
		return vector{}, fmt.Errorf("%s: DaemonSet and StatefulSet patches differ:\n%s\n%s", name, dsPatch, stsPatch)
	}
	v.Patch = string(dsPatch)
	for _, p := range []*int32{nil, i32(0), i32(1), i32(12), i32(-3)} {
		cr := &appsv1.ControllerRevision{Data: runtime.RawExtension{Raw: dsPatch}}
		v.RevisionHashes = append(v.RevisionHashes, revisionHash{p, history.HashControllerRevision(cr, p)})
	}
	return v, nil
}

func quantityVectors(inputs []string) ([]quantityVector, error) {
	var out []quantityVector
	for _, in := range inputs {
		q, err := resource.ParseQuantity(in)
		if err != nil {
			return nil, fmt.Errorf("quantity %q: %w", in, err)
		}
		canonical := q.String()
		// As the informer decodes it: ParseQuantity of the served string.
		served, err := resource.ParseQuantity(canonical)
		if err != nil {
			return nil, fmt.Errorf("quantity %q (served %q): %w", in, canonical, err)
		}
		m := map[string]resource.Quantity{"q": served}
		d := dump.ForHash(m)
		d = strings.TrimSuffix(strings.TrimPrefix(d, "(map[string]resource.Quantity)map[q:"), "]")
		out = append(out, quantityVector{In: in, Canonical: canonical, Dump: d})
	}
	return out, nil
}

func writeJSON(path string, v interface{}) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func run() error {
	corpus := flag.String("corpus", "", "directory of Deployment manifests (*.yaml)")
	schemaOut := flag.String("schema", "", "where to write the Go type schema (JSON)")
	vectorsOut := flag.String("vectors", "", "where to write the template vectors (JSON)")
	quantitiesIn := flag.String("quantities", "", "file of quantities, one a line")
	quantitiesOut := flag.String("quantity-vectors", "", "where to write the quantity vectors (JSON)")
	flag.Parse()

	types := map[string]schemaType{}
	root := walk(reflect.TypeOf(corev1.PodTemplateSpec{}), types)
	schema := struct {
		Root  string                `json:"root"`
		Types map[string]schemaType `json:"types"`
	}{root, types}
	if err := writeJSON(*schemaOut, schema); err != nil {
		return err
	}

	files, err := filepath.Glob(filepath.Join(*corpus, "*.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var vectors []vector
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for i, doc := range strings.Split(string(data), "\n---\n") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			d := &appsv1.Deployment{}
			if err := yaml.UnmarshalStrict([]byte(doc), d); err != nil {
				return fmt.Errorf("%s document %d: %w", f, i, err)
			}
			name := strings.TrimSuffix(filepath.Base(f), ".yaml") + "/" + d.Name
			v, err := makeVector(name, d)
			if err != nil {
				return err
			}
			vectors = append(vectors, v)
		}
	}
	if err := writeJSON(*vectorsOut, vectors); err != nil {
		return err
	}

	qdata, err := os.ReadFile(*quantitiesIn)
	if err != nil {
		return err
	}
	var inputs []string
	for _, l := range strings.Split(string(qdata), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			inputs = append(inputs, l)
		}
	}
	qv, err := quantityVectors(inputs)
	if err != nil {
		return err
	}
	return writeJSON(*quantitiesOut, qv)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hashvectors:", err)
		os.Exit(1)
	}
}
