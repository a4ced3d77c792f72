"""Slow float64 references written from the formulas (numpy, loops where clearer).

Nothing here imports duality: these are the independent side of every
value and gradient check. Each returns (loss, aux) like the library.
"""
import math

import numpy as np


def unit(x):
    x = np.asarray(x, np.float64)
    n = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
    return x / np.maximum(n, 1e-6)


def logsumexp(v):
    v = np.asarray(v, np.float64)
    m = np.max(v)
    return m + math.log(np.sum(np.exp(v - m)))


# ---------------------------------------------------------------- criteria

def l_c(z):
    """Def. 3.2 with K = z.T: off-diagonal of K^T K = z z^T."""
    n = z.shape[0]
    return sum(float(z[i] @ z[j]) ** 2 for i in range(n) for j in range(n) if i != j)


def l_nc(z):
    m = z.shape[1]
    return sum(float(z[:, i] @ z[:, j]) ** 2 for i in range(m) for j in range(m) if i != j)


def standardize_eq14(z):
    n, m = z.shape
    k = (z - z.mean(axis=0)).T  # M x N, rows are dimensions
    k = np.stack([math.sqrt(n / m) * row / max(np.linalg.norm(row), 1e-6) for row in k])
    return k.T


# -------------------------------------------------------- sample-contrastive

def nt_xent(z1, z2, temperature=0.1, variant="classical", negatives="identity", positive_in_denominator=True):
    """SimCLR/DCL family: 2N anchors, candidates = the other 2N - 1 rows."""
    if variant == "classical":
        z1, z2 = unit(z1), unit(z2)
    elif variant == "A":
        z1, z2 = unit(z1 - z1.mean(0)), unit(z2 - z2.mean(0))
    else:
        z1, z2 = standardize_eq14(z1), standardize_eq14(z2)
    f = {"identity": lambda s: s, "sq": lambda s: s * s, "abs": abs}[negatives]
    zz = np.concatenate([z1, z2])
    n2 = zz.shape[0]
    n = n2 // 2
    total, pos_sum, neg_sum = 0.0, 0.0, 0.0
    for a in range(n2):
        p = (a + n) % n2
        s_pos = float(zz[a] @ zz[p])
        den = []
        for b in range(n2):
            if b == a:
                continue
            s = float(zz[a] @ zz[b])
            if b == p:
                if positive_in_denominator:
                    den.append(s / temperature)
            else:
                den.append(f(s) / temperature)
                neg_sum += s
        total += -s_pos / temperature + logsumexp(den)
        pos_sum += s_pos
    return total / n2, dict(pos_sim=pos_sum / n2, neg_sim=neg_sum / (n2 * (n2 - 2)))


def spectral(z1, z2, mu=None, projection="sphere"):
    if mu is not None:
        def radius(z):
            out = []
            for row in z:
                r = np.linalg.norm(row)
                out.append(row if projection == "ball" and r <= math.sqrt(mu) else row * math.sqrt(mu) / r)
            return np.array(out)
        z1, z2 = radius(z1), radius(z2)
    n = z1.shape[0]
    pos = np.mean([float(z1[i] @ z2[i]) for i in range(n)])
    neg = np.mean([float(z1[i] @ z2[j]) ** 2 for i in range(n) for j in range(n) if i != j])
    return -2 * pos + neg, dict(pos=pos, neg=neg)


# ----------------------------------------------------- dimension-contrastive

def _vicreg_var(z, gamma, eps):
    std = np.sqrt(z.var(axis=0, ddof=1) + eps)
    return np.mean(np.maximum(0.0, gamma - std))


def _cov(z):
    zc = z - z.mean(0)
    return zc.T @ zc / (z.shape[0] - 1)


def _offdiag_sq(c):
    return sum(c[i, j] ** 2 for i in range(c.shape[0]) for j in range(c.shape[1]) if i != j)


def _c_exp(z, temperature):
    c = _cov(z)
    m = c.shape[0]
    return np.mean([logsumexp([c[i, j] / temperature for j in range(m) if j != i]) for i in range(m)])


def vicreg(z1, z2, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, gamma=1.0, eps=1e-4, cov="sq", temperature=0.1):
    m = z1.shape[1]
    inv = np.mean((z1 - z2) ** 2)
    var = (_vicreg_var(z1, gamma, eps) + _vicreg_var(z2, gamma, eps)) / 2
    if cov == "sq":
        c = _offdiag_sq(_cov(z1)) / m + _offdiag_sq(_cov(z2)) / m
    else:
        c = _c_exp(z1, temperature) + _c_exp(z2, temperature)
    return sim_coeff * inv + std_coeff * var + cov_coeff * c, dict(inv=inv, var=var, cov=c)


def vicreg_exp(z1, z2, temperature=0.1, **kw):
    return vicreg(z1, z2, cov="exp", temperature=temperature, **kw)


def vicreg_ctr(z1, z2, temperature=0.1, **kw):
    """Eq. 13: VICReg-exp's var and c_exp applied to K^T (rows = dimensions)."""
    return vicreg_exp(z1.T, z2.T, temperature=temperature, **kw)


def barlow_twins(z1, z2, lambd=0.0051, eps=1e-5):
    n = z1.shape[0]
    a = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)
    b = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
    c = a.T @ b / n
    on = sum((1 - c[j, j]) ** 2 for j in range(c.shape[0]))
    off = _offdiag_sq(c)
    return on + lambd * off, dict(on_diag=on, off_diag=off)


def tcr(z1, z2, eps_sq=0.2, inv_coeff=200.0):
    def rate(z):
        n, m = z.shape
        k = unit(z).T  # M x N
        return 0.5 * np.linalg.slogdet(np.eye(m) + m / (n * eps_sq) * k @ k.T)[1]

    r = (rate(z1) + rate(z2)) / 2
    inv = 1 - np.mean(np.sum(unit(z1) * unit(z2), axis=1))
    return -r + inv_coeff * inv, dict(tcr=r, inv=inv)


def wmse(z1, z2, w_size, eps=1e-4, orders=None):
    n, m = z1.shape
    orders = [np.arange(n)] if orders is None else orders

    def whiten(x):
        xc = x - x.mean(0)
        sigma = (1 - eps) * (xc.T @ xc / (x.shape[0] - 1)) + eps * np.eye(m)
        w = np.linalg.inv(np.linalg.cholesky(sigma))  # W^T W = Sigma^-1
        return xc @ w.T

    losses = []
    for order in orders:
        w1, w2 = np.zeros((n, m)), np.zeros((n, m))
        for s in range(0, n, w_size):
            idx = order[s:s + w_size]
            w1[idx], w2[idx] = whiten(z1[idx]), whiten(z2[idx])
        losses.append(np.mean([np.sum((unit(w1[i]) - unit(w2[i])) ** 2) for i in range(n)]))
    loss = float(np.mean(losses))
    return loss, dict(mse=loss)


# ------------------------------------------------------------- distillation

def _cos(a, b):
    return float(np.sum(unit(a) * unit(b)))


def byol(p1, p2, target1, target2):
    n = p1.shape[0]
    per = [(2 - 2 * _cos(p1[i], target2[i])) + (2 - 2 * _cos(p2[i], target1[i])) for i in range(n)]
    cos = np.mean([(_cos(p1[i], target2[i]) + _cos(p2[i], target1[i])) / 2 for i in range(n)])
    return float(np.mean(per)), dict(cos=cos)


def simsiam(p1, p2, target1, target2):
    n = p1.shape[0]
    d = np.mean([-_cos(p1[i], target2[i]) / 2 - _cos(p2[i], target1[i]) / 2 for i in range(n)])
    return d, dict(cos=-d)


def moco(q1, q2, key1, key2, queue=None, temperature=0.2, symmetric=False):
    def one(q, k):
        q, k = unit(q), unit(k)
        out = []
        for i in range(q.shape[0]):
            if queue is None:
                logits = [float(q[i] @ k[j]) / temperature for j in range(k.shape[0])]
            else:
                negs = unit(queue)
                logits = [float(q[i] @ k[i]) / temperature] + [float(q[i] @ x) / temperature for x in negs]
            out.append(logsumexp(logits) - float(q[i] @ k[i]) / temperature)
        return np.mean(out)

    loss = one(q1, key2)
    if symmetric:
        loss = (loss + one(q2, key1)) / 2
    return loss, {}


def _softmax(v):
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def dino(s1, s2, teacher1, teacher2, center, student_temperature=0.1, teacher_temperature=0.04, extra_views=None):
    students = [s1, s2] + ([] if extra_views is None else list(extra_views))
    teachers = [_softmax((t - center) / teacher_temperature) for t in (teacher1, teacher2)]
    terms = []
    for ti, p in enumerate(teachers):
        for si, s in enumerate(students):
            if si == ti:
                continue
            logq = np.log(_softmax(s / student_temperature))
            terms.append(np.mean(-np.sum(p * logq, axis=1)))
    ent = np.mean([np.mean(-np.sum(p * np.log(p + 1e-300), axis=1)) for p in teachers])
    return float(np.mean(terms)), dict(teacher_entropy=ent)


# ----------------------------------------------------------------- clustering

def sinkhorn(scores, epsilon=0.05, iters=3):
    """SwAV's Sinkhorn-Knopp as in the paper's algorithm: Q is K x B."""
    q = np.exp(scores / epsilon).T
    k, b = q.shape
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(axis=1, keepdims=True)
        q /= k
        q /= q.sum(axis=0, keepdims=True)
        q /= b
    return (q * b).T


def swav(z1, z2, prototypes, temperature=0.1, epsilon=0.05, sinkhorn_iters=3, queue=None,
         extra_views=None, code_inputs=None):
    """`code_inputs` = (z1, z2, prototypes, queue) to take the (stop-gradient) codes from."""
    def scores_of(z, c):
        return unit(z) @ unit(c).T

    views = [z1, z2] + ([] if extra_views is None else list(extra_views))
    cz1, cz2, cc, cq = code_inputs if code_inputs is not None else (z1, z2, prototypes, queue)
    codes = []
    for z in (cz1, cz2):
        s = scores_of(z, cc)
        if cq is not None:
            s = np.concatenate([scores_of(cq, cc), s])
        codes.append(sinkhorn(s, epsilon, sinkhorn_iters)[-z.shape[0]:])
    terms = []
    for ti, q in enumerate(codes):
        for vi, v in enumerate(views):
            if vi == ti:
                continue
            logp = np.log(_softmax(scores_of(v, prototypes) / temperature))
            terms.append(np.mean(-np.sum(q * logp, axis=1)))
    ent = np.mean([np.mean(-np.sum(q * np.log(q + 1e-300), axis=1)) for q in codes])
    return float(np.mean(terms)), dict(code_entropy=ent)


def nnclr(z1, z2, support, query1=None, query2=None, temperature=0.1):
    """NNCLR: each query's nearest support row (by cosine) anchors InfoNCE against the other view's batch."""
    s = unit(support)
    n = z1.shape[0]
    total = pos = close = 0.0
    for q, other in ((z1 if query1 is None else query1, z2), (z2 if query2 is None else query2, z1)):
        qn, o = unit(q), unit(other)
        for i in range(n):
            nn = s[int(np.argmax([float(qn[i] @ s[k]) for k in range(len(s))]))]
            logits = [float(nn @ o[k]) / temperature for k in range(n)]
            total += logsumexp(logits) - logits[i]
            pos += float(nn @ o[i])
            close += float(nn @ qn[i])
    return total / (2 * n), dict(pos_sim=pos / (2 * n), nn_sim=close / (2 * n))
