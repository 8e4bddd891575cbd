//! Seed mixing and the few distributions the simulator samples.
//!
//! Every random decision is drawn from a stream keyed by what it is about
//! (seed, node, tick, edge), never from one stream shared across nodes, so any
//! worker can reproduce any node's output on its own.

use rand::Rng;

/// Salt of the topology stream.
pub(crate) const SALT_TOPOLOGY: u64 = 0x746f_706f_6c6f_6779;
/// Salt of the fault schedule stream.
pub(crate) const SALT_FAULTS: u64 = 0x6661_756c_7473_0001;
/// Salt of the per-(node, tick) stream.
pub(crate) const SALT_NODE_TICK: u64 = 0x6e6f_6465_7469_636b;
/// Salt of the per-flow shape hash (existence, protocol, flags).
pub(crate) const SALT_FLOW: u64 = 0x666c_6f77_7368_6170;
/// Salt of the ephemeral source port hash.
pub(crate) const SALT_PORT: u64 = 0x6570_6865_6d65_7261;
/// Salt of the per-edge service port hash.
pub(crate) const SALT_SERVICE: u64 = 0x7365_7276_6963_6573;
/// Salt of the per-edge base rate hash.
pub(crate) const SALT_EDGE_RATE: u64 = 0x6564_6765_7261_7465;
/// Salt of the per-node baseline hash.
pub(crate) const SALT_NODE_BASE: u64 = 0x6e6f_6465_6261_7365;

/// The splitmix64 finaliser: a fast, well-mixing bijection on 64 bits.
#[inline]
pub(crate) const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a salted seed with two keys.
#[inline]
pub(crate) const fn hash2(seed: u64, a: u64, b: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ a) ^ b)
}

/// A uniform number in `[0, 1)` from the top 53 bits of a hash.
#[inline]
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Two independent standard normal samples from two uniforms (Box–Muller).
#[inline]
pub(crate) fn box_muller(u1: f64, u2: f64) -> (f64, f64) {
    // 1 - u1 lies in (0, 1], so the logarithm is finite.
    let r = (-2.0 * (1.0 - u1).ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Two independent standard normal samples from a random stream (Marsaglia's polar
/// method: no trigonometry, about 2.5 uniforms per pair).
#[inline]
pub(crate) fn normal_pair<R: Rng + ?Sized>(rng: &mut R) -> (f64, f64) {
    loop {
        let u = 2.0 * rng.random::<f64>() - 1.0;
        let v = 2.0 * rng.random::<f64>() - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            let m = (-2.0 * s.ln() / s).sqrt();
            return (u * m, v * m);
        }
    }
}

/// One standard normal sample from a hash (for per-edge and per-node constants).
pub(crate) fn hash_normal(h: u64) -> f64 {
    box_muller(unit(h), unit(splitmix64(h))).0
}

/// A Poisson distribution with its `exp(-lambda)` computed once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Poisson {
    lambda: f64,
    limit: f64,
}

impl Poisson {
    /// The distribution of mean `lambda` (non-positive or NaN means always 0).
    pub(crate) fn new(lambda: f64) -> Poisson {
        let lambda = if lambda > 0.0 { lambda } else { 0.0 };
        Poisson {
            lambda,
            limit: (-lambda).exp(),
        }
    }

    /// One sample: Knuth's product method for small means, a rounded normal
    /// approximation above 30 where the product method gets slow.
    #[inline]
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        if self.lambda == 0.0 {
            return 0;
        }
        if self.lambda < 30.0 {
            let mut k = 0u32;
            let mut p: f64 = rng.random();
            while p > self.limit {
                k += 1;
                p *= rng.random::<f64>();
            }
            k
        } else {
            let (z, _) = normal_pair(rng);
            (self.lambda + self.lambda.sqrt() * z).round().max(0.0) as u32
        }
    }
}

/// One Poisson sample of mean `lambda`.
pub(crate) fn poisson<R: Rng + ?Sized>(rng: &mut R, lambda: f64) -> u32 {
    Poisson::new(lambda).sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn poisson_and_normal_have_the_right_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for lambda in [0.02, 1.5, 8.0, 60.0] {
            let n = 20_000;
            let mean = (0..n)
                .map(|_| f64::from(poisson(&mut rng, lambda)))
                .sum::<f64>()
                / n as f64;
            assert!(
                (mean - lambda).abs() < 0.05 * lambda + 0.01,
                "lambda {lambda}: mean {mean}"
            );
        }
        let samples: Vec<f64> = (0..20_000).map(|_| normal_pair(&mut rng).0).collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / samples.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "mean {mean} var {var}"
        );
        assert_eq!(poisson(&mut rng, 0.0), 0);
        assert_eq!(poisson(&mut rng, f64::NAN), 0);
    }

    #[test]
    fn hashes_depend_on_every_key() {
        let base = hash2(1, 2, 3);
        assert_ne!(base, hash2(0, 2, 3));
        assert_ne!(base, hash2(1, 3, 2));
        assert_ne!(base, hash2(1, 2, 4));
        assert!((0.0..1.0).contains(&unit(u64::MAX)));
    }
}
