//! Popularity: which simulated conversation each webhook goes to (a few
//! get most of the traffic).
use rand::Rng;

/// Zipf(s) over `n` items as a cumulative table.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        let total = acc;
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let roll: f64 = rng.random();
        self.cdf
            .partition_point(|c| *c < roll)
            .min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn zipf_prefers_the_head() {
        let zipf = Zipf::new(1000, 1.1);
        let mut rng = StdRng::seed_from_u64(7);
        let head = (0..10_000).filter(|_| zipf.sample(&mut rng) < 10).count();
        assert!(
            head > 4000,
            "top 1% of conversations got only {head} of 10000"
        );
    }
}
