//! `/metrics/cadvisor`: the core cAdvisor `container_*` and `machine_*`
//! series with cAdvisor's label set (`container`, `id`, `image`, `name`,
//! `namespace`, `pod`) for the root cgroup, each pod cgroup and each
//! container. cAdvisor serves these from a plain Prometheus registry, so the
//! help texts carry no stability prefix.
//!
//! Left out because we cannot provide them faithfully: the filesystem series
//! (`container_fs_*` need cAdvisor's per-device accounting and `device`
//! label) and per-CPU or throttling series.

use super::prom::{Family, render};
use super::provider::Collected;
use super::types::{CpuStats, MemoryStats, NetworkStats};

type Labels = Vec<(&'static str, String)>;

fn labels(container: &str, id: &str, image: &str, name: &str, ns: &str, pod: &str) -> Labels {
    vec![
        ("container", container.to_string()),
        ("id", id.to_string()),
        ("image", image.to_string()),
        ("name", name.to_string()),
        ("namespace", ns.to_string()),
        ("pod", pod.to_string()),
    ]
}

struct Families {
    cpu: Family,
    ws: Family,
    usage: Family,
    rss: Family,
    rx: Family,
    tx: Family,
}

impl Families {
    fn cpu_mem(&mut self, l: &Labels, cpu: &Option<CpuStats>, mem: &Option<MemoryStats>) {
        if let Some(c) = cpu {
            // cAdvisor leaves out a zero total.
            if let Some(ns) = c.usage_core_nano_seconds.filter(|ns| *ns > 0) {
                let mut l = l.clone();
                l.push(("cpu", "total".into()));
                self.cpu.push(l, ns as f64 / 1e9, c.time.millis());
            }
        }
        if let Some(m) = mem {
            let ts = m.time.millis();
            if let Some(v) = m.working_set_bytes {
                self.ws.push(l.clone(), v as f64, ts);
            }
            if let Some(v) = m.usage_bytes {
                self.usage.push(l.clone(), v as f64, ts);
            }
            if let Some(v) = m.rss_bytes {
                self.rss.push(l.clone(), v as f64, ts);
            }
        }
    }

    fn network(&mut self, l: &Labels, net: &Option<NetworkStats>) {
        let Some(n) = net else { return };
        let ts = n.time.millis();
        for i in &n.interfaces {
            let mut l = l.clone();
            l.push(("interface", i.name.clone()));
            if let Some(v) = i.rx_bytes {
                self.rx.push(l.clone(), v as f64, ts);
            }
            if let Some(v) = i.tx_bytes {
                self.tx.push(l, v as f64, ts);
            }
        }
    }
}

pub fn render_cadvisor_metrics(c: &Collected) -> String {
    let mut f = Families {
        cpu: Family::new(
            "container_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed in seconds.",
        ),
        ws: Family::new(
            "container_memory_working_set_bytes",
            "gauge",
            "Current working set in bytes.",
        ),
        usage: Family::new(
            "container_memory_usage_bytes",
            "gauge",
            "Current memory usage in bytes, including all memory regardless of when it was accessed",
        ),
        rss: Family::new("container_memory_rss", "gauge", "Size of RSS in bytes."),
        rx: Family::new(
            "container_network_receive_bytes_total",
            "counter",
            "Cumulative count of bytes received",
        ),
        tx: Family::new(
            "container_network_transmit_bytes_total",
            "counter",
            "Cumulative count of bytes transmitted",
        ),
    };
    let node = &c.summary.node;
    let root = labels("", "/", "", "", "", "");
    f.cpu_mem(&root, &node.cpu, &node.memory);
    f.network(&root, &node.network);
    for pod in &c.summary.pods {
        let (ns, name, uid) = (&pod.pod_ref.namespace, &pod.pod_ref.name, &pod.pod_ref.uid);
        if let Some(cg) = c.pod_cgroups.get(uid) {
            let l = labels("", cg, "", "", ns, name);
            f.cpu_mem(&l, &pod.cpu, &pod.memory);
            f.network(&l, &pod.network);
        }
        for ctr in &pod.containers {
            let Some(m) = c.containers.get(&(uid.clone(), ctr.name.clone())) else {
                continue;
            };
            let l = labels(&ctr.name, &m.cgroup, &m.image, &m.id, ns, name);
            f.cpu_mem(&l, &ctr.cpu, &ctr.memory);
        }
    }
    let [boot_id, machine_id, system_uuid] = &c.machine_labels;
    let machine = vec![
        ("boot_id", boot_id.clone()),
        ("machine_id", machine_id.clone()),
        ("system_uuid", system_uuid.clone()),
    ];
    let mut cores = Family::new("machine_cpu_cores", "gauge", "Number of logical CPU cores.");
    cores.push(machine.clone(), c.num_cores as f64, None);
    let mut mem = Family::new(
        "machine_memory_bytes",
        "gauge",
        "Amount of memory installed on the machine.",
    );
    mem.push(machine, c.memory_capacity as f64, None);
    render(vec![f.cpu, f.ws, f.usage, f.rss, f.rx, f.tx, cores, mem])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::provider::ContainerMeta;
    use crate::stats::types::*;

    #[test]
    fn series_carry_cadvisors_labels() {
        let t = Time::at(jiff::Timestamp::from_millisecond(1_000).unwrap());
        let mut c = Collected {
            num_cores: 2,
            memory_capacity: 4_000_000_000,
            machine_labels: ["b".into(), "m".into(), "s".into()],
            ..Collected::default()
        };
        c.summary.node.cpu = Some(CpuStats {
            time: t,
            usage_nano_cores: None,
            usage_core_nano_seconds: Some(2_000_000_000),
        });
        c.summary.pods.push(PodStats {
            pod_ref: PodReference {
                name: "web".into(),
                namespace: "ns".into(),
                uid: "u1".into(),
            },
            containers: vec![ContainerStats {
                name: "app".into(),
                memory: Some(MemoryStats {
                    time: t,
                    working_set_bytes: Some(10),
                    usage_bytes: Some(20),
                    rss_bytes: Some(5),
                    ..MemoryStats::default()
                }),
                ..ContainerStats::default()
            }],
            network: Some(NetworkStats {
                time: t,
                default: InterfaceStats::default(),
                interfaces: vec![InterfaceStats {
                    name: "eth0".into(),
                    rx_bytes: Some(7),
                    tx_bytes: Some(8),
                    ..InterfaceStats::default()
                }],
            }),
            ..PodStats::default()
        });
        c.pod_cgroups.insert("u1".into(), "/kubepods/podu1".into());
        c.containers.insert(
            ("u1".into(), "app".into()),
            ContainerMeta {
                id: "abc".into(),
                image: "docker.io/library/nginx@sha256:1".into(),
                cgroup: "/kubepods/podu1/abc".into(),
            },
        );
        let text = render_cadvisor_metrics(&c);
        for line in [
            "container_cpu_usage_seconds_total{container=\"\",cpu=\"total\",id=\"/\",image=\"\",name=\"\",namespace=\"\",pod=\"\"} 2 1000",
            "container_memory_working_set_bytes{container=\"app\",id=\"/kubepods/podu1/abc\",image=\"docker.io/library/nginx@sha256:1\",name=\"abc\",namespace=\"ns\",pod=\"web\"} 10 1000",
            "container_memory_usage_bytes{container=\"app\",id=\"/kubepods/podu1/abc\",image=\"docker.io/library/nginx@sha256:1\",name=\"abc\",namespace=\"ns\",pod=\"web\"} 20 1000",
            "container_memory_rss{container=\"app\",id=\"/kubepods/podu1/abc\",image=\"docker.io/library/nginx@sha256:1\",name=\"abc\",namespace=\"ns\",pod=\"web\"} 5 1000",
            "container_network_receive_bytes_total{container=\"\",id=\"/kubepods/podu1\",image=\"\",interface=\"eth0\",name=\"\",namespace=\"ns\",pod=\"web\"} 7 1000",
            "container_network_transmit_bytes_total{container=\"\",id=\"/kubepods/podu1\",image=\"\",interface=\"eth0\",name=\"\",namespace=\"ns\",pod=\"web\"} 8 1000",
            "machine_cpu_cores{boot_id=\"b\",machine_id=\"m\",system_uuid=\"s\"} 2",
            "machine_memory_bytes{boot_id=\"b\",machine_id=\"m\",system_uuid=\"s\"} 4e+09",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }
}
