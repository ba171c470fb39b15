// The one number format of the page (and, through attnscope.render.palette.fmt, of the HTML report):
// 3 significant digits, rounded half away from zero on the exact value (what toExponential does);
// fixed notation when the rounded value's decimal exponent is within palette.json's
// format.fixed_exponents (0.00123 ... 9990), otherwise d.dde±E (1.23e+4, 5.00e-5); probabilities
// as percentages of the same form (0.5434 -> "54.3%"). Missing values (null, NaN) print as "—".
import { PALETTE } from "./palette.js";
import { t } from "./i18n.js";
import "./locales/shell.js";

const SPEC = PALETTE.format;
const [LOW, HIGH] = SPEC.fixed_exponents;

function placePoint(digits, exponent) { // digits d1d2d3 of d1.d2d3 × 10^exponent
  if (exponent < 0) return `0.${"0".repeat(-exponent - 1)}${digits}`;
  if (exponent + 1 >= digits.length) return digits + "0".repeat(exponent + 1 - digits.length);
  return `${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
}

export function format(value) {
  if (value === null || value === undefined || typeof value === "boolean") return SPEC.missing;
  const x = Number(value);
  if (Number.isNaN(x)) return SPEC.missing;
  if (!Number.isFinite(x)) return x > 0 ? SPEC.infinity : `-${SPEC.infinity}`;
  if (x === 0) return "0";
  const sign = x < 0 ? "-" : "";
  const [mantissa, power] = Math.abs(x).toExponential(SPEC.significant - 1).split("e");
  const exponent = Number(power);
  if (exponent < LOW || exponent > HIGH) return `${sign}${mantissa}e${exponent < 0 ? "-" : "+"}${Math.abs(exponent)}`;
  return sign + placePoint(mantissa.replace(".", ""), exponent);
}

// A probability as a percentage: 0.5434 -> "54.3%", 0.0802 -> "8.02%".
export function formatProb(p) {
  if (p === null || p === undefined || Number.isNaN(Number(p))) return SPEC.missing;
  return `${format(Number(p) * 100)}%`;
}

// An answer's "dp" block as words: what was noised, with which ε and mechanism (README: Differential privacy).
export function dpWords(what, dp, note = "") {
  const short = (x) => String(Number(Number(x).toPrecision(4))); // 2, 1.414, 0.6462: as the CLI prints them
  const mechanism = dp.mechanism === "gaussian"
    ? t("dp.gaussian", { sensitivity: short(dp.sensitivity), sigma: short(dp.noise_scale), delta: dp.delta })
    : t("dp.laplace", { sensitivity: short(dp.sensitivity), scale: short(dp.noise_scale) });
  return t("dp.noised", { what, epsilon: dp.epsilon, mechanism, note });
}
