//! The pages after the first of a list the API answers a page at a time ([`PAGE_SIZE`] items, `before=<uuid>` for
//! the next): a button at the list's far end while the last page was full, each press adding the next page there.
//! Feeds read newest first, so their older items go below; a thread's replies and a conversation's messages read
//! oldest first, so their earlier items go above.

use cruddur_api::{Activity, Message, MessageGroup, PAGE_SIZE};
use leptos::prelude::*;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{ErrorNotice, Submitter};

/// An item of a paged list: the uuid the next page's `before` names.
pub(crate) trait Paged: Clone + Send + Sync + 'static {
    fn uuid(&self) -> Uuid;
}

impl Paged for Activity {
    fn uuid(&self) -> Uuid {
        self.uuid
    }
}

impl Paged for Message {
    fn uuid(&self) -> Uuid {
        self.uuid
    }
}

impl Paged for MessageGroup {
    fn uuid(&self) -> Uuid {
        self.uuid
    }
}

/// How a list reads, and so at which end the next page joins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Newest first (the feeds, the conversations): older pages go below.
    NewestFirst,
    /// Oldest first (a thread's replies, a conversation's messages): earlier pages go above.
    OldestFirst,
}

impl Order {
    /// The cursor of the page next to `page` (its oldest item), when `page` was full: there may be more.
    pub(crate) fn next_cursor<I: Paged>(self, page: &[I]) -> Option<Uuid> {
        if page.len() < PAGE_SIZE {
            return None;
        }
        let oldest = match self {
            Order::NewestFirst => page.last(),
            Order::OldestFirst => page.first(),
        };
        oldest.map(Paged::uuid)
    }

    fn button_label(self) -> &'static str {
        match self {
            Order::NewestFirst => "Show more",
            Order::OldestFirst => "Show earlier",
        }
    }
}

/// The pages of `path` after `first_page`, in an `<ol class=class>` beside the first page's list, and the button that
/// loads the next one. `items` reads a page's items from the API's answer, `item` shows one (as an `<li>`).
#[component]
pub(crate) fn MorePages<T, I, V>(
    path: String,
    order: Order,
    first_page: Vec<I>,
    items: fn(T) -> Vec<I>,
    item: fn(I) -> V,
    class: &'static str,
) -> impl IntoView
where
    T: DeserializeOwned + 'static,
    I: Paged,
    V: IntoView + 'static,
{
    let submitter = Submitter::new("next page");
    let shown = RwSignal::new(Vec::<I>::new());
    let next = RwSignal::new(order.next_cursor(&first_page));
    let pending = submitter.pending();
    let error = submitter.error();
    let show_more = move |_| {
        let Some(before) = next.get_untracked() else { return };
        let separator = if path.contains('?') { '&' } else { '?' };
        let page = format!("{path}{separator}before={before}");
        submitter.send(
            move |api| async move { api.get::<T>(&page).await },
            move |answer| {
                let page = items(answer);
                next.set(order.next_cursor(&page));
                shown.update(|shown| match order {
                    Order::NewestFirst => shown.extend(page),
                    Order::OldestFirst => {
                        shown.splice(0..0, page);
                    }
                });
            },
        );
    };
    let list = view! {
        <ol class=class>
            <For each=move || shown.get() key=Paged::uuid let:shown_item>
                {item(shown_item)}
            </For>
        </ol>
    };
    let button = view! {
        <Show when=move || next.with(Option::is_some)>
            <button class="show_more secondary" on:click=show_more.clone() disabled=move || pending.get()>
                {move || if pending.get() { "Loading…" } else { order.button_label() }}
            </button>
        </Show>
        <ErrorNotice error=error />
    };
    match order {
        Order::NewestFirst => view! { {list} {button} }.into_any(),
        Order::OldestFirst => view! { {button} {list} }.into_any(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn messages(count: usize) -> Vec<Message> {
        (0..count)
            .map(|n| Message {
                uuid: Uuid::from_u128(n as u128),
                display_name: "Andrew Brown".to_owned(),
                handle: "andrewbrown".to_owned(),
                message: format!("message {n}"),
                created_at: DateTime::UNIX_EPOCH,
            })
            .collect()
    }

    #[test]
    fn a_full_page_leads_to_the_one_beyond_its_oldest_item() {
        let page = messages(PAGE_SIZE);
        assert_eq!(Order::NewestFirst.next_cursor(&page), Some(Uuid::from_u128(PAGE_SIZE as u128 - 1)));
        assert_eq!(Order::OldestFirst.next_cursor(&page), Some(Uuid::from_u128(0)));
    }

    #[test]
    fn a_short_page_is_the_last() {
        assert_eq!(Order::NewestFirst.next_cursor(&messages(PAGE_SIZE - 1)), None);
        assert_eq!(Order::OldestFirst.next_cursor(&messages(0)), None);
    }
}
